"""PNG plots (matplotlib, headless): robustness curves with CI bands, leaderboard bar charts.

Every plot is drawn from the same rows that the CSV exports hold, and written atomically.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from robench.fileio import atomic_write_bytes
from robench.results.schema import ResultRow
from robench.threats.base import CLEAN


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


def close(fig) -> None:
    _figure().close(fig)
