"""``robench.engine.evaluate``: every model x every threat -> one :class:`ResultRow` each.

One clean pass per model (threat ``none``), then each threat of the suite (or the ``--threat``
list) for the model's modality, attacking only the examples still correctly classified. Every
summary number is computed from the per-example records (robench.engine.rows), which ``--out DIR``
writes as JSONL. This module only orchestrates: what a run evaluates is robench.engine.plan,
sharding robench.engine.distributed, pairing with ``--baseline`` robench.engine.baseline, the
flags robench.checks.sanity, language models robench.lm.perplexity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from robench.engine.args import EvaluateArgs, RunArgs
from robench.checks.probe import probe_preprocessing
from robench.checks.sanity import Flag, attach, flag_rows, model_flags
from robench.device import resolve_device, resolve_threads
from robench.engine.baseline import add_baseline, check_pairable
from robench.engine.distributed import Shard, complete, gather_max, owned_clean, resolve_shard
from robench.engine.jobs import Job, header_lines, prepare, run_clean
from robench.engine.plan import MODALITIES, check_threats, is_lm_run, load_models, model_specs, modality_of, resolve_threats
from robench.engine.rows import ResultKey, make_row, row_key, set_pooled_n
from robench.engine.run_config import note_skipped, open_store, run_config
from robench.engine.runner import attack_records, check_modality
from robench.models.loading import LoadedModel
from robench.results.records import Record
from robench.results.schema import ResultRow
from robench.results.store import RecordStore, record_key
from robench.threats.base import CLEAN, NO_PERTURBATION, Threat

@dataclass
class _Run:
    """What the jobs of one evaluation share: its options, records store, shard and device, the
    records of every (model, data, threat) so far, each model's flags, and the progress callbacks."""

    args: RunArgs
    store: RecordStore
    shard: Shard | None
    device: torch.device
    on_progress: Callable[[str, int, int], None] | None
    on_warning: Callable[[str], None] | None
    results: dict[ResultKey, list[Record]] = field(default_factory=dict)
    model_checks: dict[str, list[Flag]] = field(default_factory=dict)

    def step(self, what: str) -> Callable[[int, int], None] | None:
        """A progress callback for the work described by ``what``."""
        return (lambda done, total: self.on_progress(what, done, total)) if self.on_progress else None


def run_job(run: _Run, job: Job, clean_all: list[Record], clean_seconds: float, threats: list[Threat],
            ) -> Iterator[tuple[str, str, list[Record], float, int]]:
    """Every threat of one job after its clean pass (``clean_all``, taking ``clean_seconds``):
    ``(spec, unit, records, seconds, pooled parts)`` each, the clean threat first, each as soon as
    it is done (so that its row is shown then)."""
    model, ds, args, shard, store = job.model, job.ds, run.args, run.shard, run.store
    key = record_key(model.name, ds.part)  # records files: one set per data part
    clean = store.records(key, CLEAN, lambda journal: owned_clean(clean_all, shard, args.batch_size))
    yield CLEAN, NO_PERTURBATION, complete(clean, ds, shard), clean_seconds, 1
    label = f"{model.name}{f' [{ds.part}]' if ds.part else ''}"
    for threat in threats:
        check_modality(model, threat)
        threat.warm_up()  # imports and WordNet's index: one-time costs, not this threat's seconds
        parts = threat.expand()
        seconds = 0.0
        for k, part in enumerate(parts):
            step = run.step(f"{label} · {threat.short}" + (f" ({k + 1}/{len(parts)}: {part.short})" if len(parts) > 1 else ""))
            recs = store.records(key, part.spec, lambda journal, part=part, step=step: attack_records(
                model, ds, part, clean_all, args.batch_size, args.seed, journal=journal, shard=shard,
                amp=args.amp, on_warning=run.on_warning, feed=job.feed, on_batch=step))
            seconds += store.seconds  # compute time, also of batches a killed run journaled
            run.results[(model.name, ds.name, ds.split, part.spec)] = recs = complete(recs, ds, shard)
            if len(parts) == 1:
                yield threat.spec, threat.perturbation_unit, recs, seconds, 1
        if len(parts) > 1:
            pooled = [r for part in parts for r in run.results[(model.name, ds.name, ds.split, part.spec)]]
            if shard is None or not shard.distributed:  # a rank's folder keeps its own records only
                store.write(key, threat.spec, pooled)
            yield threat.spec, threat.perturbation_unit, pooled, seconds, len(parts)


def job_rows(run: _Run, job: Job, threats: list[Threat]) -> Iterator[ResultRow]:
    """The rows of one job, each as soon as it is done: the clean row (and its ReaL re-scoring),
    then one per threat, with the model's flags."""
    args = run.args
    start = time.perf_counter()
    clean_all = run_clean(job, args.batch_size, run.step(f"{job.model.name}{f' [{job.ds.part}]' if job.ds.part else ''} · clean"))
    clean_seconds = time.perf_counter() - start  # every shard needs every clean prediction
    note_skipped(job, run.store, run.on_warning)
    model, ds = job.model, job.ds  # --skip-unreadable may have left examples out of ds
    warning = probe_preprocessing(model, ds, job.expected_accuracy, args.seed, job.feed)
    if warning and run.on_warning:
        run.on_warning(warning)
    if model.name not in run.model_checks:  # once per model (ImageNet-C: not once per part)
        run.model_checks[model.name] = model_flags(model, ds, args.seed, job.feed)
    for spec, unit, recs, seconds, pooled in run_job(run, job, clean_all, clean_seconds, threats):
        if run.shard is not None and run.shard.distributed:
            seconds = gather_max(seconds)
        row = make_row(job, spec, recs, unit, seconds, args.seed, run.device)
        run.results[row_key(row)] = recs
        if pooled > 1:  # pooled over several threats: one row about len(recs) / pooled examples
            set_pooled_n(row, len(recs) // pooled)
        attach([row], run.model_checks, {})
        yield row
        if spec == CLEAN and ds.real_labels is not None:  # re-scored from the records (merge does the same)
            from robench.data.imagenet_rows import real_row

            yield real_row(row, recs)


def evaluate(
    args: EvaluateArgs,
    on_row: Callable[[ResultRow], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    on_header: Callable[[str], None] | None = None,
    on_models: Callable[[list[LoadedModel]], None] | None = None,
) -> list[ResultRow]:
    """Evaluate each model (default: the whole zoo) on its dataset under each threat of the suite.

    ``args.models`` holds MODEL specs (zoo names, paths, ``timm:``/``hf:``) or, from Python, ready
    :class:`LoadedModel` objects. Returns one row per (model, data, threat), the clean row
    (``threat = none``) first for each model, each with the sanity battery's flags; a dataset with
    several parts (``imagenet-c:DIR``) adds its summary rows (:func:`robench.data.imagenet_rows.imagenet_c_rows`),
    ReaL labels (``imagenet-real:DIR``) a re-scored clean row. With ``--out``, records are journaled
    and a killed run resumes where it stopped. ``on_models`` sees the loaded models before any
    evaluation work and may refuse the run (raise :class:`RobenchError`), e.g. an output that cannot
    be made for them; ``on_header`` hears one line per (model, data) with its first row.
    """
    device = resolve_device(args.device)
    resolve_threads(args.threads)
    shard, device = resolve_shard(args.shard, args.out, device)
    check_pairable(shard, args.baseline, args.out)
    specs, appended = model_specs(args)
    threats = resolve_threats(args)
    datasets: dict = {}
    models, base_name = load_models(args, specs, appended, device, datasets)
    if on_models:
        on_models(models)
    if is_lm_run(models):  # language models: perplexity rows
        from robench.lm import perplexity

        return perplexity.evaluate_lm(args, models, threats, device, on_row=on_row, on_note=on_note, baseline=base_name)
    check_threats(args, threats, models)
    jobs = prepare(args, models, datasets, on_note=on_note)
    headers = header_lines(jobs, device) if on_header else {}
    all_specs = [t.spec for m in MODALITIES for t in threats[m]]
    run = _Run(args, open_store(args, shard, run_config("evaluate", args, jobs, all_specs, device, shard)),
               shard, device, on_progress, on_warning)
    partial = shard is not None and not shard.distributed  # rows of this process cover only its shard
    rows: list[ResultRow] = []
    for job in jobs:
        for row in job_rows(run, job, threats[modality_of(job.model)]):
            rows.append(row)
            header = headers.pop((row.model, row.dataset), None) if row.threat == CLEAN else None
            if header:  # shown with the first row, so that a bad input before it stays a one-line error
                on_header(header)
            if on_row:
                on_row(row)
    if run.store.resumed and on_note:
        on_note(f"resumed: {run.store.resumed} records taken from the previous run in {args.out}")
    flag_rows(rows, run.results, run.model_checks, compare=not partial, on_warning=on_warning)  # a shard's: after merge
    if args.baseline is not None:  # (a --shard process has none: refused above, paired by robench merge)
        add_baseline(rows, run.results, base_name)
    if not partial:
        from robench.data.imagenet_rows import imagenet_c_rows

        summary = imagenet_c_rows(rows, run.results)
        attach(summary, run.model_checks, {})
        for row in summary:
            rows.append(row)
            if on_row:
                on_row(row)
    run.store.write_rows(rows)
    if partial and on_note:
        on_note(f"shard {shard.index}/{shard.count}: these rows cover only this shard's examples; "
                f"combine the shards with `robench merge {args.out}`")
    return rows
