"""Markdown tables of multi-seed summaries (:mod:`robench.studies.aggregate`): one table per
dataset for evaluations, one per diagnostic for ``robench diagnose`` CSVs; and the short threat
labels they and the summary plot share."""

from __future__ import annotations

from typing import Sequence

from robench.report.tables import short_threat
from robench.studies.aggregate import DiagnosticSummary, SeedSummary


def threat_labels(threats: Sequence[str]) -> dict[str, str]:
    """Short threat names (:func:`robench.report.tables.short_threat`) that stay distinct within one table: a
    parameter left out at its default is kept where threats of the same name differ in it
    (``word-swap:rate=0.1`` next to ``word-swap:rate=0.05``, not ``word-swap``)."""
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
