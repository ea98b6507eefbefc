"""``robench diagnose``: its arguments, its long-format rows, and the run over every model
(formulas in :mod:`robench.studies.diagnose`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from robench.argspec import option
from robench.data.base import IMAGE, LM as LM_TASK, Dataset
from robench.errors import RobenchError, check_seed
from robench.models.loading import LoadedModel
from robench.results.schema import dataclass_csv
from robench.studies.diagnose.data import examples
from robench.studies.diagnose.hidden import hidden_states, load_robench_model, robench_net
from robench.studies.diagnose.metrics import attention_sensitivity, layer_powers, snr_from_powers, token_uniformity
from robench.studies.diagnose.noise import check_noise, gaussian_pixel_noise, noise_description, replace_tokens

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

    models: Sequence[str | LoadedModel] = option((), None, cli_type=list[str], cli_required=True,
                                                 help="Zoo names or robench checkpoint paths.")
    dataset: str | None = option(None, "--dataset", help="Dataset name or source (default: the model card's).")
    split: str = option("test", "--split", help="Dataset split.")
    # seeded stratified sample; None = the whole split
    num_examples: int | None = option(64, ("-n", "--num-examples"), help="Seeded stratified sample size.")
    batch_size: int = option(64, "--batch-size", help="Examples per forward pass.")
    device: str = option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
    seed: int = option(0, "--seed", help="Seed for the sample, the noise and the random tokens.")
    noise: float | None = option(None, "--noise", help="SNR noise: pixel sigma (images) or token replacement rate (text); default 0.1.")
    # a string as the command line gives it; __post_init__ parses it (or a sequence) into sorted lengths
    lengths: str | Sequence[int] = option(",".join(map(str, DEFAULT_LENGTHS)), "--lengths", cli_type=str,
                                          help="Sequence lengths N for attention sensitivity.")
    delta: float = option(1e-3, "--delta", help="Relative size ||dx||/||x|| of the attention-sensitivity perturbation.")
    draws: int = option(4, "--draws", help="Random inputs per length (averaged).")
    threads: int | None = option(None, "--threads", help="CPU threads (default: $ROBENCH_THREADS, else torch's: one per core, idle OpenMP threads sleeping).")

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

    def __post_init__(self) -> None:
        self.value = float(self.value)  # the CSV writes Python floats (repr: shortest round-trip digits)


@dataclass
class DiagnoseResult:
    """The rows of every model, with the noise and the number of examples each was measured with."""

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
        """The long-format CSV of ``robench diagnose --csv`` (:data:`CSV_COLUMNS`; None is an empty cell)."""
        return dataclass_csv(self.rows, CSV_COLUMNS)


def layer_diagnostics(model: LoadedModel, ds: Dataset, noise: float, seed: int, batch_size: int) -> list[Measurement]:
    """Token uniformity and SNR per layer of ``model`` on the examples of ``ds``."""
    from robench.seeds import example_seed

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


def diagnose(args: DiagnoseArgs) -> DiagnoseResult:
    """Run the three diagnostics on every model of ``args`` (models and data checked before any work)."""
    from robench.device import resolve_device, resolve_threads

    device = resolve_device(args.device)
    resolve_threads(args.threads)
    models = [load_robench_model(spec, device) for spec in args.models]
    datasets: dict = {}
    jobs = []
    for model in models:
        noise = DEFAULT_NOISE if args.noise is None else args.noise
        check_noise(model, noise)
        jobs.append((model, examples(model, args.dataset, args.split, args.num_examples, args.seed, datasets), noise))
    result = DiagnoseResult(rows=[])
    for model, ds, noise in jobs:
        net = robench_net(model)
        result.rows += layer_diagnostics(model, ds, noise, args.seed, args.batch_size)
        family = "text" if model.task != IMAGE else "vit"
        sens = attention_sensitivity(net.encoder.blocks[0].attn, family, args.lengths, args.delta, args.draws,
                                     args.seed, device, causal=model.task == LM_TASK)
        result.rows += [Measurement(model.name, SENSITIVITY, None, n, v, UNITS[SENSITIVITY]) for n, v in sens.items()]
        result.noise[model.name] = noise_description(model, noise)
        result.examples[model.name] = len(ds)
    return result
