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
for ``robench diagnose`` CSVs (mean ± sd per diagnostic and layer or sequence length).
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


def threat_labels(threats: Sequence[str]) -> dict[str, str]:
    """Short threat names (:func:`robench.report.tables.short_threat`) that stay distinct within one table: a
    parameter left out at its default is kept where threats of the same name differ in it
    (``word-swap:rate=0.1`` next to ``word-swap:rate=0.05``, not ``word-swap``)."""
    from robench.report.tables import short_threat

    def params(spec: str) -> dict[str, str]:
        _, _, rest = spec.partition(":")
        return dict(kv.split("=", 1) for kv in rest.split(",") if "=" in kv)

    by_name: dict[str, list[str]] = {}
    for t in dict.fromkeys(threats):
        by_name.setdefault(t.partition(":")[0], []).append(t)
    labels = {}
    for name, specs in by_name.items():
        varying = {k for k in set().union(*(params(t) for t in specs))
                   if len({params(t).get(k) for t in specs}) > 1}
        for t in specs:
            keep = params(short_threat(t)).keys() | varying
            kv = [f"{k}={v}" for k, v in params(t).items() if k in keep]
            labels[t] = name + (":" + ",".join(kv) if kv else "")
    return labels


def _fmt(s: SeedSummary, x: float) -> str:
    return f"{x:.1f}" if s.metric == "perplexity" else f"{100 * x:.1f}"


def summaries_markdown(summaries: Sequence[SeedSummary]) -> str:
    """One table per dataset: mean ± sd over seeds (%, or perplexity), range, and the baseline comparison
    (threats by :func:`threat_labels`; the CSV has the full spec)."""
    lines = []
    for dataset, n in dict.fromkeys((s.dataset, s.n) for s in summaries):
        part = [s for s in summaries if (s.dataset, s.n) == (dataset, n)]
        metric = "perplexity (lower is better)" if part[0].metric == "perplexity" else "accuracy % (higher is better)"
        base = next((s.baseline for s in part if s.baseline), "")
        label = threat_labels([s.threat for s in part])
        lines += [f"**{dataset}** (n={part[0].n}), {metric}; mean ± sample sd over seeds {part[0].seeds}"
                  + (f"; Δ = model − {base} of the same seed" if base else ""), "",
                  "| model | threat | mean ± sd | per seed | Δ vs baseline (mean ± sd) | seeds better | t-test p | "
                  + ("paired window-test p per seed" if part[0].metric == "perplexity" else "McNemar p per seed") + " |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in part:
            per_seed = " / ".join(_fmt(s, float(v)) for v in s.values.split("/"))
            delta = "" if s.delta_mean is None else \
                f"{'+' if s.delta_mean > 0 else ''}{_fmt(s, s.delta_mean)} ± {_fmt(s, s.delta_sd or 0.0)}"
            better = "" if s.seeds_better is None else f"{s.seeds_better}/{len(s.seeds.split('/'))}"
            tp = "" if s.ttest_p is None else f"{s.ttest_p:.3g}"
            lines.append(f"| {s.group} | {label[s.threat]} | {_fmt(s, s.mean)} ± {_fmt(s, s.sd)} | {per_seed} | {delta} | "
                         f"{better} | {tp} | {s.paired_p} |")
        lines.append("")
    return "\n".join(lines)


def plot_summaries(summaries: Sequence[SeedSummary], path: Path):
    """Grouped bars (mean over seeds) per threat, one bar per model group, a dot per seed; one panel per dataset."""
    from robench.report.plots import _figure, _save

    plt = _figure()
    keys = list(dict.fromkeys((s.dataset, s.n) for s in summaries))  # one panel per (dataset, n)
    fig, axes = plt.subplots(len(keys), 1, figsize=(max(6.4, 1.1 * max(
        len({s.threat for s in summaries if (s.dataset, s.n) == k}) for k in keys) + 2), 3.8 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        part = [s for s in summaries if (s.dataset, s.n) == key]
        threats = list(dict.fromkeys(s.threat for s in part))
        groups = list(dict.fromkeys(s.group for s in part))
        width = 0.8 / len(groups)
        scale = 1.0 if part[0].metric == "perplexity" else 100.0
        for gi, group in enumerate(groups):
            cells = {s.threat: s for s in part if s.group == group}
            xs = [ti + (gi - (len(groups) - 1) / 2) * width for ti, t in enumerate(threats) if t in cells]
            ss = [cells[t] for t in threats if t in cells]
            ax.bar(xs, [scale * s.mean for s in ss], width, label=group, alpha=0.75)
            for x, s in zip(xs, ss):
                ys = [scale * float(v) for v in s.values.split("/")]
                ax.plot([x] * len(ys), ys, "o", color="black", markersize=2.5)
        ax.set_xticks(range(len(threats)))
        label = threat_labels(threats)
        ax.set_xticklabels([label[t] for t in threats], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("perplexity (lower is better)" if scale == 1.0 else "accuracy (%), higher is better")
        ax.set_title(f"{Path(key[0]).name} (n={part[0].n}): mean over seeds {part[0].seeds}, dots = seeds", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return fig


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
    from robench.studies.diagnose import CSV_COLUMNS
    from robench.fileio import read_text_file

    rows = list(csv.DictReader(io.StringIO(read_text_file(path, "diagnostics file"))))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise RobenchError(f"{path} is not a robench diagnose CSV (columns {', '.join(CSV_COLUMNS)})")
    return rows


def is_diagnostics_file(path: Path | str) -> bool:
    """True when the file's header is that of ``robench diagnose --csv``."""
    from robench.studies.diagnose import CSV_COLUMNS

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


def diagnostics_markdown(summaries: Sequence[DiagnosticSummary]) -> str:
    """One table per diagnostic: a row per model group, a column per layer (or N), cells mean ± sd."""
    lines = []
    for diag in dict.fromkeys(s.diagnostic for s in summaries):
        part = [s for s in summaries if s.diagnostic == diag]
        keys = list(dict.fromkeys((s.layer, s.n_tokens) for s in part))
        heads = [f"L{layer}" if layer else f"N={n}" for layer, n in keys]
        lines += [f"**{diag}** ({part[0].unit}), mean ± sample sd over seeds {part[0].seeds}", "",
                  "| model | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
        digits = 1 if part[0].unit == "dB" else 3
        for group in dict.fromkeys(s.group for s in part):
            cells = {(s.layer, s.n_tokens): s for s in part if s.group == group}
            lines.append(f"| {group} | " + " | ".join(
                f"{cells[k].mean:.{digits}f} ± {cells[k].sd:.{digits}f}" if k in cells else "" for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)
