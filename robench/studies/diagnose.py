"""``robench diagnose``: mechanism diagnostics of robench Transformers (README "Diagnostics").

Three measures, each one long-format row per measurement (:class:`Measurement`):

* **token uniformity** per layer ``l`` (0 = the embedding ``Y_0``, ``l`` = the output of block ``l``,
  before the final LayerNorm): the mean pairwise cosine similarity of the tokens of a sequence,
  *all* tokens including CLS (padding excluded), over ordered pairs ``i != j``::

      U_l = mean_examples  1/(n(n-1)) sum_{i != j} cos(h_i, h_j)

  (a zero vector has cosine 0 with everything; sequences of fewer than 2 tokens are skipped).
* **SNR** per layer: clean inputs vs noisy ones (images: Gaussian pixel noise ``sigma``, clamped to
  [0, 1]; text: each real token replaced with probability ``rate`` by a different word of the
  vocabulary, so positions stay aligned), both seeded per example::

      SNR_l = 10 log10( sum_e ||H_l(x_e)||^2 / sum_e ||H_l(x~_e) - H_l(x_e)||^2 )   [dB]

  i.e. mean signal power over mean noise power (powers averaged over examples before the ratio,
  so one example left unchanged by the noise does not make the mean infinite); ``+inf`` when the
  noisy hidden states equal the clean ones for every example. Norms run over the valid tokens
  (CLS included) and all channels.
* **attention sensitivity** vs sequence length ``N``: the model's first attention layer alone (its
  weights, and its bandwidths ``h_y, h_p`` for BSA), fed ``N`` random token features (seeded, unit
  variance, model width, no CLS), perturbed by ``dx`` of relative size ``delta`` in a random
  direction::

      S(N) = ( ||A(x + dx) - A(x)|| / ||A(x)|| ) / ( ||dx|| / ||x|| )      (Frobenius norms)

  averaged over ``draws`` draws, computed in float64. BSA positions: ``0..N-1`` on a line for text;
  for images the most square ``r x c`` grid with ``r c = N`` (``r`` the largest divisor of ``N`` not
  above ``sqrt(N)``: 64 -> 8x8, 128 -> 8x16; a prime ``N`` is a 1 x N line).

Language models (``lm`` checkpoints): the examples are windows of the evaluation token file (the
stream cut into consecutive non-overlapping windows of the model's context, a seeded sample of
``n`` of them), the noise replaces tokens (``<unk>``/``<eos>`` neither replaced nor drawn), and the
attention layer of the sensitivity measure runs with its causal mask on positions ``0..N-1``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robench.data.base import IMAGE, LM as LM_TASK
from robench.errors import RobenchError, check_seed
from robench.models.loading import LoadedModel

UNIFORMITY, SNR, SENSITIVITY = "token_uniformity", "snr", "attention_sensitivity"
UNITS = {UNIFORMITY: "cosine", SNR: "dB", SENSITIVITY: "ratio"}
CSV_COLUMNS = ("model", "diagnostic", "layer", "n_tokens", "value", "unit")
DEFAULT_LENGTHS = (64, 128, 256, 512, 1024, 2048)
MAX_LENGTH = 4096  # the exact BSA path holds (H, N, N) fp64 tensors: 4096 -> 0.5 GB each
DEFAULT_NOISE = 0.1


def parse_lengths(spec: str | Sequence[int]) -> tuple[int, ...]:
    """``"64,128,256"`` (or a sequence) -> sorted unique lengths in [2, MAX_LENGTH]; else a one-line error."""
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
        if not spec.strip() or any(not p for p in parts):
            raise RobenchError(f"--lengths {spec!r}: give comma-separated integers, e.g. 64,128,256")
        values = []
        for p in parts:
            try:
                values.append(int(p))
            except ValueError:
                raise RobenchError(f"--lengths {spec!r}: {p!r} is not an integer; give e.g. 64,128,256") from None
    else:
        values = [int(v) for v in spec]
        if not values:
            raise RobenchError("--lengths: give at least one sequence length, e.g. 64,128,256")
    bad = [v for v in values if not 2 <= v <= MAX_LENGTH]
    if bad:
        raise RobenchError(f"--lengths: {bad[0]} is out of range; each length must be in [2, {MAX_LENGTH}]")
    if len(set(values)) != len(values):
        raise RobenchError(f"--lengths: {sorted(v for v in values if values.count(v) > 1)[0]} is given twice")
    return tuple(sorted(values))


@dataclass(kw_only=True)
class DiagnoseArgs:
    """Arguments of ``robench diagnose`` (shared by the CLI and the Python API)."""

    models: Sequence[str | LoadedModel] = ()
    dataset: str | None = None  # default: the model card's
    split: str = "test"
    num_examples: int | None = 64  # seeded stratified sample; None = the whole split
    batch_size: int = 64
    device: str = "auto"
    seed: int = 0
    noise: float | None = None  # image: pixel sigma; text: token replacement rate; default DEFAULT_NOISE
    lengths: str | Sequence[int] = DEFAULT_LENGTHS
    delta: float = 1e-3  # relative size ||dx|| / ||x|| of the attention-sensitivity perturbation
    draws: int = 4  # random inputs per length, averaged
    threads: int | None = None  # CPU threads (default: $ROBENCH_THREADS, else torch's: one per core)

    def __post_init__(self) -> None:
        if not self.models:
            raise RobenchError("diagnose needs at least one MODEL")
        check_seed(self.seed)
        self.lengths = parse_lengths(self.lengths)
        if self.num_examples is not None and self.num_examples < 1:
            raise RobenchError(f"-n/--num-examples must be >= 1, got {self.num_examples}")
        if self.batch_size < 1:
            raise RobenchError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise >= 0):
            raise RobenchError(f"--noise must be a finite number >= 0, got {self.noise}")
        if not (math.isfinite(self.delta) and 0 < self.delta <= 1):
            raise RobenchError(f"--delta must be in (0, 1], got {self.delta}")
        if self.draws < 1:
            raise RobenchError(f"--draws must be >= 1, got {self.draws}")


@dataclass
class Measurement:
    """One CSV row: ``layer`` is None for attention sensitivity, ``n_tokens`` None for per-layer measures."""

    model: str
    diagnostic: str
    layer: int | None
    n_tokens: int | None
    value: float
    unit: str


@dataclass
class DiagnoseResult:
    rows: list[Measurement]
    noise: dict[str, str] = field(default_factory=dict)  # model -> "pixel gaussian sigma=0.1" etc.
    examples: dict[str, int] = field(default_factory=dict)  # model -> number of examples used

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.rows))

    def series(self, model: str, diagnostic: str) -> list[tuple[int, float]]:
        """``(layer or n_tokens, value)`` pairs of one model and diagnostic, in order."""
        key = (lambda r: r.n_tokens) if diagnostic == SENSITIVITY else (lambda r: r.layer)
        return [(key(r), r.value) for r in self.rows if r.model == model and r.diagnostic == diagnostic]

    def to_csv(self) -> str:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for r in self.rows:
            w.writerow([r.model, r.diagnostic, "" if r.layer is None else r.layer,
                        "" if r.n_tokens is None else r.n_tokens, repr(float(r.value)), r.unit])
        return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# The measures, on plain tensors (what the tests check against direct formulas)


def token_uniformity(h: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean pairwise cosine similarity over ordered pairs ``i != j`` of each sequence, ``(B,)``.

    ``h`` is ``(B, N, D)``; ``mask`` ``(B, N)`` marks the tokens to use (default all). O(N D): the sum
    of all cosines is ``||sum_i h_i/||h_i|| ||^2``, minus the diagonal. NaN for fewer than 2 tokens.
    """
    hn = F.normalize(h.to(torch.float64), dim=-1)  # a zero vector stays 0: cosine 0 with everything
    if mask is None:
        n = torch.full(h.shape[:1], h.shape[1], dtype=torch.float64, device=h.device)
    else:
        hn = hn * mask[..., None].to(hn.dtype)
        n = mask.to(torch.float64).sum(-1)
    total = hn.sum(1).pow(2).sum(-1)
    diag = hn.pow(2).sum((1, 2))
    return (total - diag) / (n * (n - 1))


def layer_powers(clean: Tensor, noisy: Tensor, mask: Tensor | None = None) -> tuple[float, float]:
    """``(sum ||clean||^2, sum ||noisy - clean||^2)`` over examples, valid tokens and channels (fp64)."""
    c, d = clean.to(torch.float64), noisy.to(torch.float64) - clean.to(torch.float64)
    if mask is not None:
        m = mask[..., None].to(torch.float64)
        c, d = c * m, d * m
    return float(c.pow(2).sum()), float(d.pow(2).sum())


def snr_from_powers(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)`` in dB; +inf for zero noise (NaN if the signal is 0 too)."""
    if noise == 0:
        return math.inf if signal > 0 else math.nan
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def snr_db(clean: Tensor, noisy: Tensor, mask: Tensor | None = None) -> float:
    """SNR in dB of ``noisy`` against ``clean`` ``(B, N, D)``: total signal power over total noise power."""
    return snr_from_powers(*layer_powers(clean, noisy, mask))


@torch.no_grad()
def relative_sensitivity(attn: nn.Module, x: Tensor, dx: Tensor, **kw) -> float:
    """``(||A(x+dx) - A(x)|| / ||A(x)||) / (||dx|| / ||x||)`` of an attention layer ``A`` (kw: ``pos``, ``causal``)."""
    a0, a1 = attn(x, **kw), attn(x + dx, **kw)
    return float(((a1 - a0).norm() / a0.norm()) / (dx.norm() / x.norm()))


def grid_shape(n: int) -> tuple[int, int]:
    """The most square ``(rows, cols)`` grid of ``n`` cells: rows = the largest divisor <= sqrt(n)."""
    rows = next(r for r in range(math.isqrt(n), 0, -1) if n % r == 0)
    return rows, n // rows


def token_coords(n: int, family: str) -> Tensor:
    """Integer positions of ``n`` tokens: a line (text) or the most square grid (images)."""
    if family == "text":
        return torch.arange(n)[:, None]
    rows, cols = grid_shape(n)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([r.flatten(), c.flatten()], dim=1)


def sensitivity_inputs(n: int, dim: int, delta: float, seed: int, draw: int) -> tuple[Tensor, Tensor]:
    """Draw ``draw`` of length ``n``: ``x`` ``(1, n, dim)`` standard normal (fp64, CPU RNG seeded by
    ``(seed, n, draw)``) and ``dx`` in an independent random direction with ``||dx|| = delta ||x||``."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + n * 7_919 + draw) % (2**63))
    x = torch.randn(1, n, dim, generator=g, dtype=torch.float64)
    u = torch.randn(1, n, dim, generator=g, dtype=torch.float64)
    return x, u * (delta * x.norm() / u.norm())


@torch.no_grad()
def attention_sensitivity(attn: nn.Module, family: str, lengths: Sequence[int], delta: float = 1e-3,
                          draws: int = 4, seed: int = 0, device: torch.device | str = "cpu",
                          causal: bool = False) -> dict[int, float]:
    """Mean relative sensitivity of the attention layer ``attn`` for each length (module docstring);
    ``causal``: with the causal mask (language models).

    ``attn`` (a :class:`~robench.models.attention.Attention`) is copied to float64 on ``device``;
    draws are seeded by ``(seed, N, draw)`` on the CPU, so results do not depend on the device's RNG.
    """
    from robench.models.attention import TokenPositions

    layer = copy.deepcopy(attn).to(device=device, dtype=torch.float64).eval()
    dim = layer.qkv.in_features
    out = {}
    for n in lengths:
        pos = None
        if layer.kind == "bsa":
            pos = TokenPositions(token_coords(n, family), num_prefix=0).to(device)(n, torch.float64)
        values = []
        for d in range(draws):
            x, dx = sensitivity_inputs(n, dim, delta, seed, d)
            values.append(relative_sensitivity(layer, x.to(device), dx.to(device), pos=pos, causal=causal))
        out[n] = sum(values) / len(values)
    return out


# ---------------------------------------------------------------------------------------------
# Inputs, noise and hidden states of a loaded robench model


def robench_net(model: LoadedModel) -> nn.Module:
    """The robench network inside a loaded model, or a one-line error for anything else."""
    from robench.lm.model import RobenchLM
    from robench.models.text import RobenchTextClassifier
    from robench.models.vit import RobenchViT

    net = getattr(model.module, "net", None)
    if not isinstance(net, (RobenchViT, RobenchTextClassifier, RobenchLM)):
        raise RobenchError(f"{model.name}: diagnose needs a robench architecture (a zoo name or a robench "
                           "checkpoint); timm:/hf: models are not supported")
    return net


def gaussian_pixel_noise(x: Tensor, sigma: float, seeds: Sequence[int]) -> Tensor:
    """``clamp(x + sigma * eps, 0, 1)``, ``eps`` standard normal drawn per example from its seed (CPU RNG)."""
    eps = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds])
    return (x + sigma * eps.to(x.device, x.dtype)).clamp(0.0, 1.0)


def replace_tokens(ids: Tensor, rate: float, vocab_size: int, seeds: Sequence[int], pad_id: int = 0,
                   specials: Sequence[int] = (0, 1)) -> Tensor:
    """Each non-pad token replaced with probability ``rate`` by a different, uniformly drawn non-special id."""
    import numpy as np

    allowed = np.array([i for i in range(vocab_size) if i not in set(specials)])
    out = ids.clone()
    for b, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        row = out[b].tolist()
        hits = rng.random(len(row)) < rate
        for i, tok in enumerate(row):
            if tok != pad_id and hits[i]:
                choices = allowed[allowed != tok]
                row[i] = int(choices[int(rng.integers(len(choices)))])
        out[b] = torch.tensor(row, dtype=ids.dtype)
    return out


@torch.inference_mode()
def hidden_states(model: LoadedModel, inputs: Tensor) -> tuple[list[Tensor], Tensor | None]:
    """``[Y_0, block 1 output, ...]`` (each ``(B, N, D)``) for raw inputs, and the valid-token mask.

    Images are in [0, 1] (normalised here with the card's mean/std, as the wrapper does); text is
    token ids. The mask is None for images and language-model windows (every token is real), ``(B, N)``
    (CLS + non-pad tokens) for text.
    """
    net = robench_net(model)
    inputs = inputs.to(model.device)
    if model.task == LM_TASK:
        return net.forward_features(inputs, return_hidden=True)[1], None
    if model.task == IMAGE:
        wrapper = model.module
        _, hidden = net.forward_features((inputs - wrapper.mean) / wrapper.std, return_hidden=True)
        return hidden, None
    ids = inputs[:, : net.cfg.max_length]
    _, hidden = net.forward_features(ids, return_hidden=True)
    mask = torch.cat([torch.ones_like(ids[:, :1], dtype=torch.bool), ids != net.pad_id], dim=1)
    return hidden, mask


def check_noise(model: LoadedModel, noise: float) -> None:
    """A text model's noise is a rate: it must lie in [0, 1] (an image's sigma only needs >= 0)."""
    if model.task != IMAGE and not 0 <= noise <= 1:
        raise RobenchError(f"--noise is a token replacement rate for text model {model.name}: it must be in [0, 1], got {noise:g}")


def _noise_description(model: LoadedModel, level: float) -> str:
    if model.task == IMAGE:
        return f"pixel gaussian sigma={level:g}, clamped to [0,1]"
    return f"token replacement rate={level:g}"


def layer_diagnostics(model: LoadedModel, ds, noise: float, seed: int, batch_size: int) -> list[Measurement]:
    """Token uniformity and SNR per layer of ``model`` on the examples of ``ds``."""
    from robench.engine.runner import example_seed

    net = robench_net(model)
    image = model.task == IMAGE
    check_noise(model, noise)
    uni_sum: list[float] = []
    uni_n: list[int] = []
    powers: list[list[float]] = []
    for pos, x, _ in ds.batches(batch_size):
        seeds = [example_seed(seed, ds.ids[p]) for p in pos]
        if image:
            noisy = gaussian_pixel_noise(x, noise, seeds)
        elif model.task == LM_TASK:  # windows of token ids: no padding
            tok = model.module.tokenizer
            noisy = replace_tokens(x, noise, len(tok), seeds, pad_id=-1, specials=(tok.unk_id, tok.eos_id))
        else:
            x = model.module.encode(x)
            tok = model.module.tokenizer
            noisy = replace_tokens(x, noise, len(tok), seeds, pad_id=net.pad_id, specials=(tok.pad_id, tok.unk_id))
        clean_h, mask = hidden_states(model, x)
        noisy_h, _ = hidden_states(model, noisy)
        if not uni_sum:
            uni_sum, uni_n, powers = [0.0] * len(clean_h), [0] * len(clean_h), [[0.0, 0.0] for _ in clean_h]
        for l, (hc, hn) in enumerate(zip(clean_h, noisy_h)):
            u = token_uniformity(hc, mask)
            ok = torch.isfinite(u)
            uni_sum[l] += float(u[ok].sum())
            uni_n[l] += int(ok.sum())
            s, e = layer_powers(hc, hn, mask)
            powers[l][0] += s
            powers[l][1] += e
    rows = []
    for l in range(len(uni_sum)):
        value = uni_sum[l] / uni_n[l] if uni_n[l] else math.nan
        rows.append(Measurement(model.name, UNIFORMITY, l, None, value, UNITS[UNIFORMITY]))
    for l, (s, e) in enumerate(powers):
        rows.append(Measurement(model.name, SNR, l, None, snr_from_powers(s, e), UNITS[SNR]))
    return rows


def lm_windows(model: LoadedModel, name: str, n: int | None, seed: int):
    """A seeded sample of ``n`` (all if None) consecutive context-length windows of token file ``name``,
    as a :class:`~robench.data.base.Dataset` of token-id rows (ids = window index, targets unused)."""
    import numpy as np

    from robench.data.base import Dataset, content_sha256
    from robench.lm.corpus import read_lines

    tok = model.module.tokenizer
    context = tok.max_length
    stream = tok.stream(read_lines(name, "evaluation file"))
    k = len(stream) // context
    if k == 0:
        raise RobenchError(f"{name} holds {len(stream)} tokens, fewer than one context of {context} for {model.name}")
    keep = np.arange(k) if n is None or n >= k else np.sort(np.random.default_rng(seed).choice(k, n, replace=False))
    x = stream[: k * context].view(k, context)[torch.as_tensor(keep)]
    y = torch.zeros(len(keep), dtype=torch.long)
    return Dataset(name=name, task=LM_TASK, split="test", labels=["-"], inputs=x, targets=y,
                   ids=[int(i) for i in keep], sha256=content_sha256(x, y))


def _load(spec: str | LoadedModel, device: torch.device) -> LoadedModel:
    from robench.models.loading import load_model

    if isinstance(spec, LoadedModel):
        model = spec
    else:
        if str(spec).startswith(("timm:", "hf:")):
            raise RobenchError(f"{spec}: diagnose needs a robench architecture (a zoo name or a robench "
                               "checkpoint); timm:/hf: models are not supported")
        model = load_model(spec, device)
    robench_net(model)
    return model


def diagnose(args: DiagnoseArgs) -> DiagnoseResult:
    """Run the three diagnostics on every model of ``args`` (models and data checked before any work)."""
    from robench.data.registry import check_split, load_dataset
    from robench.data.card_paths import card_columns
    from robench.device import resolve_device, resolve_threads
    from robench.data.loader import Feed
    from robench.data.preprocess import from_contract
    from robench.engine.jobs import check_inputs, check_labels, dataset_of, select_examples

    device = resolve_device(args.device)
    resolve_threads(args.threads)
    models = [_load(spec, device) for spec in args.models]
    datasets: dict[tuple[str, str], object] = {}
    jobs = []
    for model in models:
        name, source = dataset_of(model, args.dataset)
        noise = DEFAULT_NOISE if args.noise is None else args.noise
        check_noise(model, noise)
        if model.task == LM_TASK:  # a token file: windows of the model's context
            jobs.append((model, replace(lm_windows(model, source, args.num_examples, args.seed), name=name), noise))
            continue
        check_split(source, args.split)
        key = (source, args.split)
        if key not in datasets:
            datasets[key] = load_dataset(source, args.split, None if args.dataset else card_columns(model.card, {}))
        _, ds = check_labels(model, datasets[key] if name == source else replace(datasets[key], name=name))
        pre = from_contract(model.card.preprocessing) if ds.task == IMAGE else None
        check_inputs(model, ds, pre)
        sample = select_examples(ds, args.num_examples, args.seed)
        if sample.lazy:  # image files: the (small) sample decoded once, as the model's preprocessing feeds it
            sample = replace(sample, inputs=Feed(pre, torch.device("cpu")).tensor(sample))
        jobs.append((model, sample, noise))
    result = DiagnoseResult(rows=[])
    for model, ds, noise in jobs:
        net = robench_net(model)
        result.rows += layer_diagnostics(model, ds, noise, args.seed, args.batch_size)
        family = "text" if model.task != IMAGE else "vit"
        sens = attention_sensitivity(net.encoder.blocks[0].attn, family, args.lengths, args.delta, args.draws,
                                     args.seed, device, causal=model.task == LM_TASK)
        result.rows += [Measurement(model.name, SENSITIVITY, None, n, v, UNITS[SENSITIVITY]) for n, v in sens.items()]
        result.noise[model.name] = _noise_description(model, noise)
        result.examples[model.name] = len(ds)
    return result


def plot_diagnostics(result: DiagnoseResult, path) -> object:
    """Three panels (uniformity per layer, SNR per layer, sensitivity vs N), one line per model.

    Written atomically; returns the matplotlib figure (close it with :func:`robench.report.plots.close`).
    An infinite SNR (noise left the states unchanged) is not drawn.
    """
    from robench.report.plots import _figure, _save

    plt = _figure()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [
        (UNIFORMITY, "layer (0 = embedding)", "mean pairwise cosine", "token uniformity (higher = more uniform)"),
        (SNR, "layer (0 = embedding)", "SNR (dB), higher is better", "SNR of clean vs noisy hidden states"),
        (SENSITIVITY, "sequence length N", "relative sensitivity", "first attention layer, random tokens"),
    ]
    for ax, (diag, xlabel, ylabel, title) in zip(axes, panels):
        for model in result.models:
            pts = [(x, y) for x, y in result.series(model, diag) if math.isfinite(y)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
        if diag == SENSITIVITY:
            ax.set_xscale("log", base=2)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    noise = "; ".join(sorted(set(result.noise.values())))
    fig.suptitle(f"robench diagnose (SNR noise: {noise})", fontsize=10)
    _save(fig, path)
    return fig
