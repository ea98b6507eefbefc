"""Where a result row is built: per-example records -> one :class:`ResultRow` (robench.results.schema).

Every summary number of a classifier's row (accuracies, Wilson interval, success rate, mean
perturbation and queries, top-5) is computed here from its records, by ``robench evaluate``,
``robench attack``, ``robench merge`` (from the shards' records) and the ImageNet-C / ReaL summary
rows (robench.data.imagenet_rows). Language models' rows come from per-window NLL records instead
(robench.lm.perplexity). The paired columns are filled afterwards (robench.engine.baseline).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from robench import __version__
from robench.results.records import Record, summarize
from robench.results.schema import ResultRow
from robench.results.stats import wilson_interval
from robench.threats.base import CLEAN

if TYPE_CHECKING:
    import torch

    from robench.engine.jobs import Job

ResultKey = tuple[str, str, str, str]  # (model, dataset, split, threat spec): what one list of records is about


def row_key(row: ResultRow) -> ResultKey:
    """The records a row was computed from, as keyed in a run's ``results``."""
    return (row.model, row.dataset, row.split, row.threat)


def summary_fields(records: list[Record]) -> dict:
    """The summary columns of a row, computed from its records."""
    if not records:  # a --shard process holding no example of this model (all in other shards' batches)
        return dict(n=0, clean_acc=0.0, attacked_acc=0.0, attacked_ci_low=0.0, attacked_ci_high=1.0,
                    attack_success_rate=0.0, mean_perturbation=0.0, mean_queries=0.0)
    s = summarize(records)
    lo, hi = wilson_interval(s.robust, s.n)
    return dict(n=s.n, clean_acc=s.clean_acc, attacked_acc=s.attacked_acc, attacked_ci_low=lo, attacked_ci_high=hi,
                attack_success_rate=s.attack_success_rate, mean_perturbation=s.mean_perturbation,
                mean_queries=s.mean_queries,
                clean_top5=None if s.clean_top5 is None else s.clean_top5 / s.n,
                attacked_top5=None if s.robust_top5 is None else s.robust_top5 / s.n)


def make_row(job: Job, threat: str, records: list[Record], unit: str, seconds: float, seed: int,
             device: torch.device) -> ResultRow:
    """The row of ``job``'s model under ``threat`` from its records."""
    model, ds = job.model, job.ds
    row = ResultRow(
        model=model.name, checkpoint_sha256=model.sha256, task=model.task, dataset=ds.name, split=ds.split,
        threat=threat, perturbation_unit=unit, seconds=seconds, seed=seed, device=str(device),
        robench_version=__version__, preprocessing=job.preprocessing, dataset_sha256=ds.identity(),
        **summary_fields(records),
    )
    if threat == CLEAN:  # nothing attacked: "attacked" top-5 is the clean top-5 (robust top-5 would be top-1)
        row.attacked_top5 = row.clean_top5
    return row


def recomputed(template: ResultRow, records: list[Record], **changes) -> ResultRow:
    """``template`` with its summary columns recomputed from ``records`` and no pairing (pairs are
    recomputed over the new rows): a merged row, an ImageNet-C summary row."""
    return replace(template, **summary_fields(records), baseline="", delta_vs_baseline=None,
                   paired_p=None, paired_test="", mce=None, **changes)


def set_pooled_n(row: ResultRow, n: int) -> None:
    """A pooled row (``corruption:name=all``) is about ``n`` examples, not its ``n x parts`` records."""
    row.n = n
    row.attacked_ci_low, row.attacked_ci_high = (round(v, 6) for v in wilson_interval(round(row.attacked_acc * n), n))
