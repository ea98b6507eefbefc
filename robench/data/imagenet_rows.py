"""Result rows only the ImageNet family has: ReaL re-scoring and ImageNet-C summaries with mCE.

* ReaL (``imagenet-real:DIR``): the clean predictions re-scored against the ReaL label sets, as
  timm's ``validate.py --real-labels`` does: an image counts as correct when its prediction (top-1)
  or any of its 5 best classes (top-5) is one of its ReaL labels; images without ReaL labels are
  left out. Attacked rows keep the original labels (the attacks target them), so only the clean
  row is re-scored: one extra row, dataset ``NAME (ReaL)``.
* ImageNet-C (``imagenet-c:DIR``): one row per corruption (split ``CORRUPTION``, records pooled over
  the severities present) and one overall row (split: what the tree covers) per (model, threat),
  after the part rows (split ``CORRUPTION/SEVERITY``). The overall clean row's ``mce`` is the mean
  corruption error normalised by AlexNet's published errors (Hendrycks & Dietterich 2019), over the
  benchmark corruptions present with all five severities; a corruption row's ``mce`` is its CE.
"""

from __future__ import annotations

from dataclasses import replace
from robench.data.imagenet import ALEXNET_ERRORS, imagenet_c_coverage, mean_corruption_error
from robench.engine.rows import recomputed, set_pooled_n
from robench.results.records import Record, summarize
from robench.results.schema import ResultRow
from robench.results.stats import wilson_interval
from robench.threats.base import CLEAN

REAL_SUFFIX = " (ReaL)"


def has_real_labels(records: list[Record]) -> bool:
    return any(r.real_labels is not None for r in records)


def real_row(clean_row: ResultRow, records: list[Record]) -> ResultRow:
    """The clean row re-scored against the ReaL labels its records carry (class indices)."""
    scored = [(r, set(r.real_labels)) for r in records if r.real_labels]
    n = len(scored)
    top1 = sum(r.clean_pred in real for r, real in scored)
    top5 = sum(any(p in real for p in (r.clean_top5 or [])) for r, real in scored) if all(r.clean_top5 for r, _ in scored) else None
    lo, hi = wilson_interval(top1, n)
    acc = top1 / n if n else 0.0
    return replace(clean_row, dataset=clean_row.dataset + REAL_SUFFIX, n=n, clean_acc=acc, attacked_acc=acc,
                   attacked_ci_low=lo, attacked_ci_high=hi, attack_success_rate=0.0,
                   clean_top5=None if top5 is None or not n else top5 / n,
                   attacked_top5=None if top5 is None or not n else top5 / n)


def is_part_row(row: ResultRow) -> bool:
    """A row of one ImageNet-C part (split ``CORRUPTION/SEVERITY``)."""
    return row.dataset.startswith("imagenet-c:") and "/" in row.split


def is_summary_row(row: ResultRow) -> bool:
    """A row computed from other rows' records (ImageNet-C corruption and overall rows, ReaL rows):
    ``robench merge`` recomputes these instead of reading records of their own."""
    return (row.dataset.startswith("imagenet-c:") and "/" not in row.split) or row.dataset.endswith(REAL_SUFFIX)


def _pooled(template: ResultRow, split: str, parts: list[list[Record]], seconds: float) -> ResultRow:
    """One row over several parts' records; n is the examples per part (as corruption:name=all)."""
    recs = [r for p in parts for r in p]
    row = recomputed(template, recs, split=split, seconds=seconds)
    set_pooled_n(row, max(len(p) for p in parts))
    return row


def imagenet_c_rows(rows: list[ResultRow], results: dict) -> list[ResultRow]:
    """Per-corruption and overall rows of every ImageNet-C evaluation among ``rows``."""
    groups: dict[tuple[str, str, str], list[ResultRow]] = {}
    for r in rows:
        if is_part_row(r):
            groups.setdefault((r.model, r.dataset, r.threat), []).append(r)
    out = []
    for (model, dataset, threat), part_rows in groups.items():
        by_corruption: dict[str, list[ResultRow]] = {}
        for r in part_rows:
            by_corruption.setdefault(r.split.split("/")[0], []).append(r)
        coverage, complete = imagenet_c_coverage([r.split for r in part_rows])
        mean_acc: dict[str, float] = {}
        for corruption, rs in by_corruption.items():
            row = _pooled(rs[0], corruption, [results[(model, dataset, r.split, threat)] for r in rs], sum(r.seconds for r in rs))
            # accuracy averaged over severities, unweighted (equal n per part makes it the pooled accuracy)
            mean_acc[corruption] = sum(summarize(results[(model, dataset, r.split, threat)]).attacked_acc for r in rs) / len(rs)
            if threat == CLEAN and corruption in complete:
                row.mce = round((1 - mean_acc[corruption]) / ALEXNET_ERRORS[corruption], 6)
            out.append(row)
        overall = _pooled(part_rows[0], coverage, [results[(model, dataset, r.split, threat)] for r in part_rows],
                          sum(r.seconds for r in part_rows))
        if threat == CLEAN:
            mce = mean_corruption_error({c: mean_acc[c] for c in complete})
            overall.mce = None if mce is None else round(mce, 6)
        out.append(overall)
    return out
