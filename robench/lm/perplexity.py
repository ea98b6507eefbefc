"""Perplexity of ``lm`` checkpoints, clean and under text contamination (``robench evaluate``).

**Sliding window.** The evaluation file is one token stream (``robench.lm.corpus``; an ``hf:``
causal LM's own tokenizer, :mod:`robench.models.hf_lm`), preceded by the tokenizer's start token
(``<eos>``; an ``hf:`` model's bos/eos token, GPT-2's ``<|endoftext|>``) so that its first word is
predicted too (as the start of a new line). Windows of the model's context ``L``
(``--lm-context`` for a shorter one) start every ``stride = L // 2`` tokens; the first window scores
all its predictions, every later one only the tokens past the previous window's end. So each token of the
stream is predicted exactly once, with ``L - stride`` to ``L - 1`` tokens of left context (fewer
only at the start), and ``n`` is the number of tokens in the stream (those of the words plus line ends).
Perplexity is ``exp(mean NLL)`` over those tokens, natural log.

**Interval.** 95% interval ``exp(mean +/- 1.96 se)``, with ``se`` the standard error of the mean
NLL clustered by window (the scored segment of each window is one unit: a ratio estimator over
windows), because neighbouring tokens are not independent.

**Contamination.** ``word-swap``/``typo``/``word-drop`` rewrite the evaluation file line by line
with robench's contamination threats (line k seeded by ``example_seed(seed, k)``, as example k of
a classification set); the model then reads *and predicts* the contaminated stream, so the
attacked perplexity is that of the contaminated text. The perturbation is the fraction of the
stream's tokens (line ends excluded) that changed or disappeared; it is below ``rate`` because
punctuation is not a word to the threats and a hit on WikiText's ``<unk>`` still reads ``<unk>``.
``-n N`` evaluates the first N tokens (contaminating only the lines that hold them).

**Baseline.** With ``--baseline``, each row also gets ``delta_vs_baseline`` (this perplexity minus the
baseline's, same threat) and, in the ``paired_p`` column, the p-value of a paired test on the same
token stream (``paired_test`` = ``window-clustered-z``): the per-window NLL differences, a two-sided z-test of their mean per token with the
same window-clustered standard error (:func:`paired_nll_test`). Models must read the same stream
(same vocabulary and tokenisation, hence the same contamination); otherwise pairing is refused.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from robench import __version__
from robench.data.base import LM as TASK
from robench.lm.corpus import read_lines
from robench.errors import RobenchError
from robench.fileio import atomic_write_text, sha256_file
from robench.results.schema import WINDOW_Z, ResultRow
from robench.results.stats import normal_quantile, normal_two_sided_p
from robench.threats.base import CLEAN, NO_PERTURBATION, Threat

METRIC = "perplexity"
TOKENS_PER_BATCH = 8192


@dataclass
class Perplexity:
    """Per-window NLL sums and token counts of one scored stream."""

    nll_sums: Tensor  # (W,) float64
    counts: Tensor  # (W,) int64

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def mean_nll(self) -> float:
        return float(self.nll_sums.sum()) / self.n

    @property
    def ppl(self) -> float:
        return math.exp(self.mean_nll)

    def interval(self) -> tuple[float, float]:
        """95% interval of the perplexity from the window-clustered standard error of the mean NLL."""
        w = len(self.counts)
        if w < 2:
            return self.ppl, self.ppl
        resid = self.nll_sums - self.mean_nll * self.counts.to(torch.float64)
        se = math.sqrt(float(resid.pow(2).sum()) * w / (w - 1)) / self.n
        z = normal_quantile(0.975)
        return math.exp(self.mean_nll - z * se), math.exp(self.mean_nll + z * se)


def paired_nll_test(mine: Perplexity, base: Perplexity) -> float:
    """Two-sided p of "same mean NLL per token" for two models scored on the same windows.

    The statistic is the mean per-token NLL difference ``sum_w (a_w - b_w) / n`` with the
    window-clustered standard error (as :meth:`Perplexity.interval`), referred to the normal law.
    """
    if not torch.equal(mine.counts, base.counts):
        raise RobenchError("cannot pair perplexities scored on different windows")
    w, n = len(mine.counts), mine.n
    d = mine.nll_sums - base.nll_sums
    mean = float(d.sum()) / n
    if w < 2:
        return 1.0
    resid = d - mean * mine.counts.to(torch.float64)
    se = math.sqrt(float(resid.pow(2).sum()) * w / (w - 1)) / n
    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return normal_two_sided_p(mean / se)


def windows(t: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, first_scored)`` of each window over ``t`` predictions (see the module docstring)."""
    if not 1 <= stride <= context:
        raise RobenchError(f"stride must be in [1, context={context}], got {stride}")
    out, begin, prev_end = [], 0, 0
    while True:
        end = min(begin + context, t)
        out.append((begin, end, prev_end))
        if end >= t:
            return out
        prev_end, begin = end, begin + stride


@torch.inference_mode()
def perplexity(model: Callable[[Tensor], Tensor], stream: Tensor, context: int, stride: int | None = None,
               bos: int = 1, device: torch.device | str = "cpu") -> Perplexity:
    """Sliding-window perplexity of ``stream`` (token ids) under ``model(ids (B, N)) -> logits (B, N, V)``.

    ``bos`` is prepended as the first token's context (``<eos>``: a stream starts like a new line).
    """
    stride = max(context // 2, 1) if stride is None else stride
    ids = torch.cat([torch.tensor([bos], dtype=torch.long), stream.to(torch.long).cpu()])
    t = len(ids) - 1
    if t < 1:
        raise RobenchError("the evaluation stream is empty")
    wins = windows(t, context, stride)
    sums = torch.zeros(len(wins), dtype=torch.float64)
    counts = torch.tensor([end - first for _, end, first in wins], dtype=torch.long)
    per_batch = max(TOKENS_PER_BATCH // context, 1)
    groups: dict[tuple[int, int], list[int]] = {}  # (window length, first scored offset) -> windows
    for w, (b, e, first) in enumerate(wins):
        groups.setdefault((e - b, first - b), []).append(w)
    partial = getattr(model, "partial_logits", False)  # robench LMs project the scored positions only
    for (length, off), members in groups.items():
        for s in range(0, len(members), per_batch):
            chunk = members[s : s + per_batch]
            begins = torch.tensor([wins[w][0] for w in chunk])
            idx = begins[:, None] + torch.arange(length)[None]
            x, y = ids[idx].to(device), ids[idx[:, off:] + 1].to(device)
            logits = model(x, keep_from=off) if partial else model(x)[:, off:]
            if not torch.isfinite(logits).all():
                raise RobenchError("the language model produced NaN or inf logits; the checkpoint is broken")
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 at least (fp64 stays)
            nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            sums[torch.tensor(chunk)] = nll.double().view(len(chunk), length - off).sum(1).cpu()
    return Perplexity(sums, counts)


def _changed(a: list[int], b: list[int]) -> int:
    """Tokens of ``a`` replaced or deleted in ``b``."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b))
    return len(a) - sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())


def contaminate(lines: Sequence[str], threat: Threat, tokenizer, seed: int) -> tuple[list[str], float]:
    """``lines`` rewritten by a contamination threat, line k seeded by ``example_seed(seed, k)``, and the
    fraction of the original tokens (line ends excluded) that changed or disappeared."""
    from robench.seeds import example_seed
    from robench.threats.text.contamination import example_rng

    vocab = [w for w in tokenizer.vocab if w.isalpha()]
    out, changed, total = [], 0, 0
    for k, line in enumerate(lines):
        new = threat.corrupt(line, example_rng(example_seed(seed, k)), vocab)
        a, b = tokenizer.line_ids(line)[:-1], tokenizer.line_ids(new)[:-1]
        changed += _changed(a, b) if new != line else 0
        total += len(a)
        out.append(new)
    return out, changed / max(total, 1)


def lm_threats(threats: dict[str, list[Threat]], adhoc: bool) -> tuple[list[Threat], list[Threat]]:
    """``(run, skipped)``: a language model runs text contamination only. Another threat given with
    ``--threat`` is a one-line error; a suite's text attacks are skipped (its image threats are for images)."""
    from robench.threats.text.contamination import Contamination

    given = threats.get("image", []) + threats.get("text", []) if adhoc else threats.get("text", [])
    bad = [t for t in given if not isinstance(t, Contamination)]
    if bad and adhoc:
        raise RobenchError(
            f"threat {bad[0].name!r} does not apply to a language model; use text contamination "
            "(word-swap, typo, word-drop), e.g. --threat word-swap:rate=0.1"
        )
    return [t for t in given if isinstance(t, Contamination)], bad


def prefix_lines(lines: Sequence[str], n: int, tokenizer) -> list[str]:
    """The shortest prefix of ``lines`` whose stream holds at least ``n`` tokens."""
    total = 0
    for k, line in enumerate(lines):
        total += len(tokenizer.line_ids(line))
        if total >= n:
            return list(lines[: k + 1])
    return list(lines)


def check_lm_args(args) -> None:
    if args.shard:
        raise RobenchError("--shard does not apply to language models yet; evaluate the whole stream")


def lm_context(model, args) -> int:
    """The sliding window's context: the model's own, or ``--lm-context`` (at most the model's)."""
    own = model.module.tokenizer.max_length
    asked = getattr(args, "lm_context", None)
    if asked is None:
        return own
    if asked > own:
        raise RobenchError(f"--lm-context {asked} is above model {model.name}'s context of {own} tokens; give at most {own}")
    return asked


def evaluate_lm(args, models: list, threats: dict[str, list[Threat]], device: torch.device,
                on_row: Callable[[ResultRow], None] | None = None,
                on_note: Callable[[str], None] | None = None, baseline: str | None = None) -> list[ResultRow]:
    """Rows (metric ``perplexity``) of each language model: clean, then each contamination threat.

    ``baseline`` (a model name): paired difference and test against that model (module docstring).
    """
    from robench.data.card_paths import resolve
    from robench.engine.jobs import card_path

    check_lm_args(args)
    todo, skipped = lm_threats(threats, bool(args.threats))
    texts = {}
    for model in models:  # read every evaluation file first: fail fast on bad input
        lm_context(model, args)
        name = args.dataset or model.card.evaluation.get("dataset")
        if not name:
            raise RobenchError(f"model {model.name} has no default evaluation file in its card; pass --dataset TOKENS_FILE")
        if name not in texts:  # the card's file is found from any working directory (robench.data.card_paths)
            source = name if args.dataset else resolve(model.card.evaluation, card_path(model))
            texts[name] = read_lines(source, "evaluation file")
    if skipped and on_note:
        on_note(f"language models run only contamination threats; skipped the suite's {', '.join(t.short for t in skipped)}")
    rows: list[ResultRow] = []
    scored: dict[tuple[str, str], tuple[Perplexity, Tensor]] = {}  # (model, threat) -> scores, stream
    for model in models:
        name = args.dataset or model.card.evaluation.get("dataset")
        lines = texts[name]
        if args.num_examples is not None:  # the lines that hold the first n tokens (an LM reads a contiguous stream)
            lines = prefix_lines(lines, args.num_examples, model.module.tokenizer)
        tok, net = model.module.tokenizer, model.module
        context = lm_context(model, args)
        described = f"{tok.describe()}; context {context}, stride {max(context // 2, 1)}"
        clean_ppl = None
        for spec, threat in [(CLEAN, None), *[(t.spec, t) for t in todo]]:
            start = time.perf_counter()
            text, frac = (lines, 0.0) if threat is None else contaminate(lines, threat, tok, args.seed)
            stream = tok.stream(text)
            if args.num_examples is not None:
                stream = stream[: args.num_examples]
            res = perplexity(net, stream, context, bos=tok.start_id, device=device)
            if baseline is not None:  # the start token is part of what the model reads
                scored[(model.name, spec)] = (res, torch.cat([torch.tensor([tok.start_id]), stream]))
            clean_ppl = res.ppl if threat is None else clean_ppl
            lo, hi = res.interval()
            row = ResultRow(
                model=model.name, checkpoint_sha256=model.sha256, task=TASK, dataset=str(name), split=args.split,
                n=res.n, threat=spec, clean_acc=clean_ppl, attacked_acc=res.ppl, attacked_ci_low=lo, attacked_ci_high=hi,
                attack_success_rate=0.0, mean_perturbation=frac, perturbation_unit=NO_PERTURBATION if threat is None else threat.perturbation_unit,
                mean_queries=0.0, seconds=time.perf_counter() - start, seed=args.seed, device=str(device),
                robench_version=__version__, metric=METRIC, preprocessing=described,
            )
            if args.out is not None:
                write_windows(Path(args.out), model.name, spec, res, str(name), sha256_file(name), context)
            rows.append(row)
            if on_row and baseline is None:
                on_row(row)
    if baseline is not None:  # rows are complete only once the baseline is scored
        add_lm_baseline(rows, scored, baseline)
        for row in rows if on_row else []:
            on_row(row)
    return rows


def add_lm_baseline(rows: list[ResultRow], scored: dict[tuple[str, str], tuple[Perplexity, Tensor]],
                    baseline: str) -> None:
    """Fill ``delta_vs_baseline`` (perplexity difference), ``paired_p`` and ``paired_test`` (the paired window test)."""
    for r in rows:
        if r.model == baseline or (baseline, r.threat) not in scored:
            continue
        (mine, s_mine), (theirs, s_theirs) = scored[(r.model, r.threat)], scored[(baseline, r.threat)]
        if not torch.equal(s_mine, s_theirs) or not torch.equal(mine.counts, theirs.counts):
            raise RobenchError(f"cannot pair {r.model} with baseline {baseline}: they read different token streams "
                               "(vocabulary, context or contamination differ); pair models with one tokenizer and context "
                               "(robench LMs trained on the same file, hf: LMs sharing a tokenizer; --lm-context sets the context)")
        r.baseline = baseline
        r.delta_vs_baseline = round(mine.ppl - theirs.ppl, 6)
        r.paired_p = float(f"{paired_nll_test(mine, theirs):.6g}")
        r.paired_test = WINDOW_Z


def write_windows(out: Path, model: str, spec: str, res: Perplexity, dataset: str, sha: str, context: int) -> None:
    """Per-window records (NLL sum and scored tokens) as JSONL under ``--out``: the row is computed from them."""
    from robench.results.store import records_path

    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"window": w, "tokens": int(c), "nll_sum": float(s)})
             for w, (s, c) in enumerate(zip(res.nll_sums.tolist(), res.counts.tolist()))]
    atomic_write_text(records_path(out, model, spec), "\n".join(lines) + "\n")
