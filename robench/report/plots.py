"""PNG plots (matplotlib, headless): robustness curves with CI bands, leaderboard bar charts,
multi-seed summaries (``robench aggregate``) and mechanism diagnostics (``robench diagnose``).

Every plot is drawn from the same rows that the CSV exports hold, and written atomically.
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from robench.fileio import atomic_write_bytes
from robench.results.schema import ResultRow
from robench.threats.base import CLEAN

if TYPE_CHECKING:
    from robench.studies.aggregate import SeedSummary
    from robench.studies.diagnose.run import DiagnoseResult


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_curve(result, path: Path, title_threat: str):
    """One line per model (accuracy %) with its 95% Wilson band, x = the swept parameter.

    Returns the matplotlib figure (already saved); the caller may inspect it, then close it.
    """
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    first = result.rows[0]
    for model, auc in result.auc.items():
        pts = result.points(model)
        ys = [100 * r.attacked_acc for r in pts]
        line, = ax.plot(result.xs, ys, marker="o", label=f"{model} (AUC {100 * auc:.1f})")
        ax.fill_between(result.xs, [100 * r.attacked_ci_low for r in pts], [100 * r.attacked_ci_high for r in pts],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(result.key)
    ax.set_ylabel("accuracy (%), higher is better")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title_threat} on {first.dataset}/{first.split} (n={first.n}, seed {first.seed})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return fig


def plot_leaderboard(rows: Sequence[ResultRow], path: Path):
    """Grouped bars: one group per threat (clean first), one bar per model, 95% Wilson error bars.

    Returns the matplotlib figure (already saved).
    """
    from robench.report.tables import short_threat

    plt = _figure()
    groups: "OrderedDict[tuple[str, str], list[ResultRow]]" = OrderedDict()
    for r in rows:
        groups.setdefault((r.dataset, r.split), []).append(r)
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 3.6 * len(groups)), squeeze=False)
    for ax, ((dataset, split), group) in zip(axes[:, 0], groups.items()):
        threats = list(OrderedDict.fromkeys(r.threat for r in group))
        models = list(OrderedDict.fromkeys(r.model for r in group))
        cell = {(r.model, r.threat): r for r in group}
        width = 0.8 / len(models)
        for i, m in enumerate(models):
            xs, ys, lo, hi = [], [], [], []
            for j, t in enumerate(threats):
                r = cell.get((m, t))
                if r is None:
                    continue
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(100 * r.attacked_acc)
                lo.append(100 * (r.attacked_acc - r.attacked_ci_low))
                hi.append(100 * (r.attacked_ci_high - r.attacked_acc))
            ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=2, label=m)
        ax.set_xticks(range(len(threats)))
        ax.set_xticklabels(["clean" if t == CLEAN else short_threat(t) for t in threats], rotation=15, fontsize=8)
        ax.set_ylabel("accuracy (%), higher is better")
        ax.set_ylim(0, 100)
        n = sorted({r.n for r in group})
        ax.set_title(f"{dataset}/{split} (n={'/'.join(map(str, n))}, seed {group[0].seed})", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return fig


def plot_summaries(summaries: Sequence["SeedSummary"], path: Path):
    """Grouped bars (mean over seeds) per threat, one bar per model group, a dot per seed; one panel per dataset.

    Returns the matplotlib figure (already saved).
    """
    from robench.report.summaries import threat_labels

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


def plot_diagnostics(result: "DiagnoseResult", path: Path):
    """Three panels (uniformity per layer, SNR per layer, sensitivity vs N), one line per model.

    Written atomically; returns the matplotlib figure (close it with :func:`close`).
    An infinite SNR (noise left the states unchanged) is not drawn.
    """
    from robench.studies.diagnose.run import SENSITIVITY, SNR, UNIFORMITY

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


def close(fig) -> None:
    """Free a figure these functions returned."""
    _figure().close(fig)
