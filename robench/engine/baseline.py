"""``--baseline``: each classifier row paired with the baseline model's row on the same examples.

The paired difference of robust accuracy and an exact McNemar p-value per (model, data, threat);
pooled rows (``corruption:name=all``) get the mean corruption error relative to the baseline
instead of a p-value. Language models are paired by robench.lm.perplexity (per-window NLL).
"""

from __future__ import annotations

from robench.engine.distributed import Shard
from robench.engine.rows import CLEAN, ResultKey, row_key
from robench.errors import RobenchError
from robench.results.records import Record, summarize
from robench.results.schema import MCNEMAR_EXACT, ResultRow
from robench.results.stats import mcnemar_exact
from robench.threats.base import Threat
from robench.threats.registry import build_threat


def check_pairable(shard: Shard | None, baseline: str | None, out: object) -> None:
    """A ``--shard`` process cannot pair: its models are attacked on different examples (their
    correctly classified ones), so pairing waits for ``robench merge``."""
    if shard is not None and not shard.distributed and baseline is not None:
        raise RobenchError(f"--baseline pairs models on the same examples, which a --shard process does not have; "
                           f"drop it here and pair after merging: robench merge {out} --baseline {baseline}")


def relative_mce(results: dict[ResultKey, list[Record]], row: ResultRow, baseline: str, parts: list[Threat]) -> float | None:
    """Mean corruption error relative to the baseline (Hendrycks & Dietterich 2019, with the
    baseline in AlexNet's place): mean over corruptions of sum_s err(model) / sum_s err(baseline)."""
    errs: dict[str, list[float]] = {}
    for part in parts:
        mine = summarize(results[(row.model, row.dataset, row.split, part.spec)]).attacked_acc
        base = summarize(results[(baseline, row.dataset, row.split, part.spec)]).attacked_acc
        e = errs.setdefault(part.values["name"], [0.0, 0.0])
        e[0] += 1 - mine
        e[1] += 1 - base
    if any(b == 0 for _, b in errs.values()):
        return None  # the baseline never errs on some corruption: relative error undefined
    return round(sum(m / b for m, b in errs.values()) / len(errs), 6)


def add_baseline(rows: list[ResultRow], results: dict[ResultKey, list[Record]], baseline: str) -> None:
    """Paired difference to the baseline model and an exact McNemar p-value, per (model, data, threat),
    computed on the same examples (same dataset, split, sample)."""
    base_rows = {(r.dataset, r.split, r.threat): r for r in rows if r.model == baseline}
    if not base_rows:
        raise RobenchError(f"--baseline {baseline!r} is not one of the evaluated models")
    for r in rows:
        b = base_rows.get((r.dataset, r.split, r.threat))
        if b is None or r.model == baseline or row_key(r) not in results:
            continue  # rows without records of their own (ImageNet-C summaries) are not paired
        mine, theirs = results[row_key(r)], results[row_key(b)]
        if [x.id for x in mine] != [x.id for x in theirs]:  # pooled rows compare example-by-example too
            raise RobenchError(f"cannot pair {r.model} with baseline {baseline}: they were evaluated on different examples")
        only_base = sum(t.robust and not m.robust for m, t in zip(mine, theirs))
        only_mine = sum(m.robust and not t.robust for m, t in zip(mine, theirs))
        r.baseline = baseline
        r.delta_vs_baseline = round((only_mine - only_base) / len(mine), 6)  # = attacked_acc - baseline's
        parts = build_threat(r.threat).expand() if r.threat != CLEAN else []
        if len(parts) > 1:
            # pooled rows: the 75 outcomes of one image are not independent pairs, so no McNemar test
            r.mce = relative_mce(results, r, baseline, parts)
        else:
            # 6 significant digits, as ResultRow keeps p-values (set after the row was built, so rounded here)
            r.paired_p = float(f"{mcnemar_exact(only_mine, only_base):.6g}")
            r.paired_test = MCNEMAR_EXACT
