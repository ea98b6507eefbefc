"""Aggregate result rows over training seeds: mean, spread and paired comparisons with a baseline.

A multi-seed study trains each variant with several seeds and evaluates each seed's models (for
example ``results/studies/*.sh``: files ``seed-K.csv`` whose models are named ``PREFIX-VARIANT-sK``).
:func:`aggregate_seeds` groups the rows by model name without its seed suffix, data (dataset, n)
and threat, and gives per group the seeds' values (every seed, none dropped), their mean, sample
standard deviation and range, and against the ``baseline`` group the per-seed paired difference
(same seed, same threat), its mean and spread, how many seeds favour the model, a paired t-test over
seeds and the per-seed paired p-values found in the rows (present when each seed was evaluated with
``--baseline``: exact McNemar for accuracy, the window test for perplexity; they test the examples
of one seed, the t-test the seed-to-seed variation). :func:`aggregate_diagnostics` does the same
for ``robench diagnose`` CSVs (mean ± sd per diagnostic and layer or sequence length). Their
markdown tables and plots are drawn by :mod:`robench.report.summaries` and :mod:`robench.report.plots`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

from robench.errors import RobenchError
from robench.results.schema import ResultRow, dataclass_csv

SEED_PATTERN = r"^(?P<group>.+)-s(?P<seed>\d+)$"


@dataclass
class SeedSummary:
    """One (model group, data, threat) over seeds; ``metric`` says what the values are (see ResultRow)."""

    group: str
    threat: str
    metric: str
    dataset: str
    n: int
    seeds: str  # the seeds, "/"-joined in ascending order
    values: str  # attacked metric per seed, same order
    mean: float
    sd: float  # sample standard deviation over seeds (0 for one seed)
    min: float
    max: float
    clean_mean: float
    baseline: str = ""
    delta_mean: Optional[float] = None  # mean over seeds of (this - baseline), same seed and threat
    delta_sd: Optional[float] = None
    seeds_better: Optional[int] = None  # seeds where this beats the baseline (higher accuracy / lower perplexity)
    ttest_p: Optional[float] = None  # two-sided paired t-test over seeds (None below 2 seeds or for zero spread)
    # per-seed p vs that seed's baseline from the rows' paired_p ("/"-joined; "" when not evaluated), and the
    # rows' paired_test naming it: mcnemar-exact for accuracy rows, window-clustered-z for perplexity rows
    paired_p: str = ""
    paired_test: str = ""


SUMMARY_COLUMNS = [f.name for f in fields(SeedSummary)]


def split_seed(model: str, pattern: str = SEED_PATTERN) -> tuple[str, int]:
    """``mnist-bsa-s2`` -> ``("mnist-bsa", 2)`` (``pattern`` needs named groups ``group`` and ``seed``)."""
    m = re.match(pattern, model)
    if m is None:
        raise RobenchError(f"model name {model!r} has no seed suffix matching {pattern!r}; name checkpoints "
                           "like NAME-s0.safetensors or pass --seed-pattern")
    return m["group"], int(m["seed"])


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def aggregate_seeds(rows: Sequence[ResultRow], baseline: str | None = None,
                    pattern: str = SEED_PATTERN) -> list[SeedSummary]:
    """Summaries per (model group, data, threat), in first-seen order; see the module docstring."""
    from scipy import stats

    # keyed by the data too: a threat run on a sample (-n) is another measurement than on the whole split
    table: dict[tuple[str, str, int, str], dict[int, ResultRow]] = OrderedDict()
    for r in rows:
        group, seed = split_seed(r.model, pattern)
        cell = table.setdefault((group, r.dataset, r.n, r.threat), {})
        if seed in cell:
            raise RobenchError(f"{r.model} under {r.threat} on {r.dataset} (n={r.n}) appears twice; give each "
                               "(model, data, threat) once")
        cell[seed] = r
    groups = list(dict.fromkeys(key[0] for key in table))
    if baseline is not None and baseline not in groups:
        raise RobenchError(f"--baseline {baseline!r} is not a model group here; groups: {', '.join(groups)}")
    out = []
    for (group, dataset, n, threat), by_seed in table.items():
        seeds = sorted(by_seed)
        first = by_seed[seeds[0]]
        if len({by_seed[s].metric for s in seeds}) > 1:
            raise RobenchError(f"{group} under {threat}: the seeds' rows hold different metrics")
        vals = [by_seed[s].attacked_acc for s in seeds]
        summary = SeedSummary(
            group=group, threat=threat, metric=first.metric, dataset=first.dataset, n=first.n,
            seeds="/".join(map(str, seeds)), values="/".join(f"{v:.6g}" for v in vals),
            mean=_round(statistics.fmean(vals)), sd=_round(statistics.stdev(vals)) if len(vals) > 1 else 0.0,
            min=min(vals), max=max(vals), clean_mean=_round(statistics.fmean(by_seed[s].clean_acc for s in seeds)),
        )
        base = table.get((baseline, dataset, n, threat)) if baseline is not None else None
        if base is not None and group != baseline:
            if set(base) != set(seeds):
                raise RobenchError(f"{group} under {threat} (n={n}) has seeds {seeds} but baseline {baseline} "
                                   f"has {sorted(base)}; pair equal seeds")
            mine, theirs = vals, [base[s].attacked_acc for s in seeds]
            deltas = [a - b for a, b in zip(mine, theirs)]
            lower_better = first.metric == "perplexity"
            summary.baseline = baseline
            summary.delta_mean = _round(statistics.fmean(deltas))
            summary.delta_sd = _round(statistics.stdev(deltas)) if len(deltas) > 1 else 0.0
            summary.seeds_better = sum((d < 0) if lower_better else (d > 0) for d in deltas)
            if len(deltas) > 1 and statistics.pstdev(deltas) > 0:
                summary.ttest_p = _round(float(stats.ttest_rel(mine, theirs).pvalue))
            ps = [by_seed[s].paired_p for s in seeds]
            if all(p is not None for p in ps):
                # 0 is a p-value below double precision (the LM window test's erfc underflows)
                summary.paired_p = "/".join(f"{p:.3g}" if p > 0 else "<1e-300" for p in ps)
                summary.paired_test = "/".join(dict.fromkeys(by_seed[s].paired_test for s in seeds))
        out.append(summary)
    return out


def summaries_csv(summaries: Sequence[SeedSummary]) -> str:
    return dataclass_csv(summaries, SUMMARY_COLUMNS)


@dataclass
class DiagnosticSummary:
    """One (model group, diagnostic, layer or sequence length) of ``robench diagnose`` CSVs over seeds."""

    group: str
    diagnostic: str
    layer: str  # "" for attention sensitivity (indexed by n_tokens)
    n_tokens: str  # "" for per-layer diagnostics
    unit: str
    seeds: str
    values: str
    mean: float
    sd: float
    min: float
    max: float


DIAGNOSTIC_SUMMARY_COLUMNS = [f.name for f in fields(DiagnosticSummary)]


def read_diagnostics(path: Path | str) -> list[dict[str, str]]:
    """Rows of a ``robench diagnose --csv`` file (one-line error when it is not one)."""
    from robench.studies.diagnose.run import CSV_COLUMNS
    from robench.fileio import read_text_file

    rows = list(csv.DictReader(io.StringIO(read_text_file(path, "diagnostics file"))))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise RobenchError(f"{path} is not a robench diagnose CSV (columns {', '.join(CSV_COLUMNS)})")
    return rows


def is_diagnostics_file(path: Path | str) -> bool:
    """True when the file's header is that of ``robench diagnose --csv``."""
    from robench.studies.diagnose.run import CSV_COLUMNS

    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() == ",".join(CSV_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False  # the result-file reader reports it


def aggregate_diagnostics(rows: Sequence[dict[str, str]], pattern: str = SEED_PATTERN) -> list[DiagnosticSummary]:
    """Mean, sample sd and range over seeds per (model group, diagnostic, layer / sequence length)."""
    table: dict[tuple[str, str, str, str, str], dict[int, float]] = OrderedDict()
    for r in rows:
        group, seed = split_seed(r["model"], pattern)
        cell = table.setdefault((group, r["diagnostic"], r["layer"], r["n_tokens"], r["unit"]), {})
        if seed in cell:
            raise RobenchError(f"{r['model']} {r['diagnostic']} layer {r['layer'] or '-'} N {r['n_tokens'] or '-'} "
                               "appears twice; give each model once")
        cell[seed] = float(r["value"])
    out = []
    for (group, diag, layer, n_tokens, unit), by_seed in table.items():
        seeds = sorted(by_seed)
        vals = [by_seed[s] for s in seeds]
        finite = all(math.isfinite(v) for v in vals)
        out.append(DiagnosticSummary(
            group=group, diagnostic=diag, layer=layer, n_tokens=n_tokens, unit=unit, seeds="/".join(map(str, seeds)),
            values="/".join(f"{v:.6g}" for v in vals),
            mean=_round(statistics.fmean(vals)) if finite else float("nan"),
            sd=(_round(statistics.stdev(vals)) if len(vals) > 1 else 0.0) if finite else float("nan"),
            min=min(vals), max=max(vals),
        ))
    return out


def diagnostics_csv(summaries: Sequence[DiagnosticSummary]) -> str:
    return dataclass_csv(summaries, DIAGNOSTIC_SUMMARY_COLUMNS)
