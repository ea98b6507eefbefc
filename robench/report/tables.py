"""Rich rendering of result rows: the leaderboard (one table per dataset)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from rich.table import Table

from robench.results.schema import MCNEMAR_EXACT, WINDOW_Z, ResultRow
from robench.checks.sanity import FLAGS
from robench.threats.base import CLEAN

PAIRED_TEST_WORDS = {MCNEMAR_EXACT: "exact McNemar", WINDOW_Z: "paired test of the per-window NLL differences"}  # footer legend


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def short_threat(spec: str) -> str:
    """Column header: the threat with only its non-default parameters."""
    from robench.errors import RobenchError
    from robench.threats.registry import build_threat

    try:
        return build_threat(spec).short
    except RobenchError:  # a stored result from another robench version: show it as stored
        return spec


def _ppl(x: float) -> str:
    return f"{x:.2f}"


def _value(r: ResultRow, x: float) -> str:
    """A number of row ``r`` in the table's unit: % for accuracy, plain for perplexity."""
    return _ppl(x) if r.metric == "perplexity" else _pct(x)


def _cell(r: ResultRow) -> str:
    text = f"{_value(r, r.attacked_acc)} ±{_value(r, (r.attacked_ci_high - r.attacked_ci_low) / 2)}"
    if r.attacked_top5 is not None:
        text += f"\ntop-5 {_pct(r.attacked_top5)}"
    if r.baseline and r.delta_vs_baseline is not None:
        # accuracy: percentage points; perplexity: the perplexity difference
        text += f"\nΔ{r.delta_vs_baseline:+.2f}" if r.metric == "perplexity" else f"\nΔ{100 * r.delta_vs_baseline:+.1f}"
        if r.paired_p is not None:
            text += " p<0.001" if r.paired_p < 0.001 else f" p={r.paired_p:.3f}"
        if r.mce is not None:
            text += f" mCE {100 * r.mce:.0f}%"
    return text


def _flags_cell(cells: dict[str, ResultRow]) -> str:
    """A model's flags: those on every row plainly, the others with the threats they concern."""
    per_row = {t: [c for c in r.flags.split(";") if c] for t, r in cells.items()}
    everywhere = [c for c in dict.fromkeys(c for cs in per_row.values() for c in cs) if all(c in cs for cs in per_row.values())]
    parts = [f"⚠ {c}" for c in everywhere]
    for t, cs in per_row.items():
        parts += [f"⚠ {c} ({short_threat(t)})" for c in cs if c not in everywhere]
    return "\n".join(parts) or "-"


def imagenet_c_tables(rows: Sequence[ResultRow]) -> list[Table]:
    """ImageNet-C in one table per (tree, threat): a row per model, the mean accuracy over the parts,
    the mCE (AlexNet-normalised), then each corruption's accuracy over its severities and its CE."""
    groups: "OrderedDict[tuple[str, str], list[ResultRow]]" = OrderedDict()
    for r in rows:
        groups.setdefault((r.dataset, r.threat), []).append(r)
    tables = []
    for (dataset, threat), group in groups.items():
        corruptions = list(OrderedDict.fromkeys(r.split for r in group if "/" not in r.split and "15 corruptions" not in r.split))
        overall = {r.model: r for r in group if "15 corruptions" in r.split}  # the overall rows (imagenet_c_coverage)
        cells = {(r.model, r.split): r for r in group}
        coverage = next(iter(overall.values())).split if overall else ""
        title = f"robench leaderboard: {dataset} ({coverage})" + ("" if threat == CLEAN else f" · {short_threat(threat)}")
        table = Table(title=title, caption=(
            f"n={'/'.join(map(str, sorted({r.n for r in group})))} per corruption and severity · accuracy in %, higher is "
            "better, averaged over severities; mCE and CE: error relative to AlexNet's (Hendrycks & Dietterich 2019), "
            "lower is better, for corruptions with all 5 severities"))
        for name, justify in (("#", "right"), ("model", "left"), ("mean %", "right"), ("mCE %", "right")):
            table.add_column(name, justify=justify)
        for c in corruptions:
            table.add_column(c.replace("_", " "), justify="right", overflow="fold")
        ranked = sorted(overall.items(), key=lambda kv: -kv[1].attacked_acc)
        for rank, (model, o) in enumerate(ranked, 1):
            per = []
            for c in corruptions:
                r = cells.get((model, c))
                per.append("-" if r is None else _pct(r.attacked_acc) + ("" if r.mce is None else f"\nCE {100 * r.mce:.0f}"))
            table.add_row(str(rank), model, _pct(o.attacked_acc), "-" if o.mce is None else f"{100 * o.mce:.1f}", *per)
        tables.append(table)
    return tables


def table_groups(rows: Sequence[ResultRow]) -> "OrderedDict[tuple, list[ResultRow]]":
    """Rows per table: one table per (dataset, split, metric) and run size ``n`` and seed, so two runs
    of the same (model, threat) at different n or seeds are both shown (a table cell holds one row);
    perplexity rows are not split by n (a contaminated stream has its own token count). Rows that
    would still share a cell (the same run given twice, other devices) go to a further table; rows
    identical to one already placed (the same file twice) are shown once."""
    groups: "OrderedDict[tuple, list[ResultRow]]" = OrderedDict()
    for r in rows:
        key = (r.dataset, r.split, r.metric, None if r.metric == "perplexity" else r.n, r.seed)
        for k in range(len(rows)):
            cells = groups.setdefault((*key, k), [])
            same = next((c for c in cells if (c.model, c.threat) == (r.model, r.threat)), None)
            if same is None:
                cells.append(r)
                break
            if same == r:
                break
    return OrderedDict((k, v) for k, v in groups.items() if v)


def leaderboard_tables(rows: Sequence[ResultRow]) -> list[Table]:
    """One table per (dataset, split) and run (see :func:`table_groups`): a row per model, clean
    accuracy with its 95% Wilson interval, then one column per threat (attacked accuracy +/- the
    interval's half-width), best first. ImageNet-C trees get one compact table
    (:func:`imagenet_c_tables`); their per-severity rows are in the exports."""
    corrupted = [r for r in rows if r.dataset.startswith("imagenet-c:")]
    groups = table_groups([r for r in rows if not r.dataset.startswith("imagenet-c:")])
    per_data = {}
    for (dataset, split, metric, *_rest) in groups:
        per_data[(dataset, split, metric)] = per_data.get((dataset, split, metric), 0) + 1
    tables = imagenet_c_tables(corrupted)
    for (dataset, split, metric, n_key, seed_key, extra), group in groups.items():
        ppl = metric == "perplexity"  # language models: lower is better, no percentages
        threats = list(OrderedDict.fromkeys(r.threat for r in group if r.threat != CLEAN))
        by_model: "OrderedDict[str, dict[str, ResultRow]]" = OrderedDict()
        for r in group:
            by_model.setdefault(r.model, {})[r.threat] = r

        def score(cells: dict[str, ResultRow]) -> float:
            attacked = [cells[t].attacked_acc for t in threats if t in cells]
            if attacked:
                return sum(attacked) / len(attacked)
            first = next(iter(cells.values()))
            return first.clean_acc

        ranked = sorted(by_model.items(), key=lambda kv: score(kv[1]) if ppl else -score(kv[1]))
        seeds = sorted({r.seed for r in group})
        devices = sorted({r.device for r in group})
        ns = sorted({r.n for r in group})
        baselines = sorted({r.baseline for r in group if r.baseline})
        codes = list(dict.fromkeys(c for r in group for c in r.flags.split(";") if c))
        top5 = any(r.clean_top5 is not None for r in group)
        several = per_data[(dataset, split, metric)] > 1  # say which run this table is
        run = "" if not several else (f" · n={n_key}" if n_key is not None else "") + f" · seed {seed_key}" + (f" · rows repeated ({extra + 1})" if extra else "")
        tests = list(dict.fromkeys(r.paired_test for r in group if r.paired_p is not None))
        has_mce = any(r.mce is not None for r in group)
        legend = [f"Δ: paired difference to {baselines[0]}"] if baselines else []
        if baselines and tests:
            legend.append("p: " + ", ".join(PAIRED_TEST_WORDS.get(t, t) for t in tests))
        if baselines and has_mce:
            legend.append("mCE: corruption error relative to it")
        table = Table(
            title=f"robench leaderboard: {dataset} ({split}){run}",
            caption=(
                f"n={'/'.join(map(str, ns))}{' predicted tokens' if ppl else ''} · seed {'/'.join(map(str, seeds))} · {'/'.join(devices)}\n"
                + ("perplexity, lower is better; CI and ± are 95% (standard error of the mean NLL, clustered by window)"
                   if ppl else "accuracy in %, higher is better; CI and ± are 95% Wilson"
                   + ("; top-5: the label among the 5 best classes" if top5 else ""))
                + (f"\n{', '.join(legend)}" if legend else "")
                + "".join(f"\n⚠ {c}: {FLAGS.get(c, 'see flag_notes')}" for c in codes)
            ),
        )
        table.add_column("#", justify="right")
        table.add_column("model", no_wrap=True)
        table.add_column("n", justify="right")
        table.add_column("clean ppl" if ppl else "clean %", justify="right")
        table.add_column("95% CI", justify="right", no_wrap=True)
        if top5:
            table.add_column("top-5 %", justify="right")
        for t in threats:
            table.add_column(short_threat(t), justify="right", overflow="fold")
        if codes:
            table.add_column("flags", overflow="fold")
        for rank, (model, cells) in enumerate(ranked, 1):
            ref = cells.get(CLEAN) or next(iter(cells.values()))
            clean_cells = [_value(ref, ref.clean_acc), "-"]
            if CLEAN in cells:
                clean_cells[1] = f"[{_value(ref, ref.attacked_ci_low)}, {_value(ref, ref.attacked_ci_high)}]"
            if top5:
                clean_cells.append("-" if ref.clean_top5 is None else _pct(ref.clean_top5))
            threat_cells = []
            for t in threats:
                c = cells.get(t)
                threat_cells.append("-" if c is None else _cell(c))
            flag_cells = [_flags_cell(cells)] if codes else []
            table.add_row(str(rank), model, str(ref.n), *clean_cells, *threat_cells, *flag_cells)
        tables.append(table)
    return tables
