"""``robench.engine.attack``: one threat on one checkpoint, in detail, optionally saving the adversarials."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from robench.data.adversarial import ADV_FORMAT, StreamingImages
from robench.data.loader import Feed
from robench.data.base import LM as LM_TASK
from robench.device import resolve_device, resolve_threads
from robench.errors import RobenchError
from robench.engine.args import AttackArgs
from robench.engine.distributed import complete, gather_max, owned_clean, resolve_shard
from robench.engine.plan import apply_budget
from robench.engine.rows import make_row
from robench.engine.run_config import note_skipped, open_store, run_config
from robench.engine.jobs import Job, load_spec, prepare, run_clean
from robench.results.records import Record
from robench.results.schema import ResultRow
from robench.results.store import record_key
from robench.engine.runner import KeepAdv, attack_records, check_modality
from robench.checks.sanity import attach, model_flags
from robench.threats.base import CLEAN, NO_PERTURBATION
from robench.threats.registry import build_threat


@dataclass
class AttackReport:
    clean_row: ResultRow
    row: ResultRow
    records: list[Record]
    max_linf: float
    max_l2: float
    examples_per_second: float
    max_perturbation: float = 0.0  # in the threat's unit (text: fraction of words changed), over attacked examples
    examples: list[Record] = field(default_factory=list)
    originals: dict[int, str] = field(default_factory=dict)  # example id -> clean text (text threats)
    labels: list[str] = field(default_factory=list)


def open_adversarials(path: Path, job: Job, threat: str) -> StreamingImages:
    """The ``--save-adv`` file of a run, filled batch by batch as the attack runs (memory stays
    O(batch) however many images); renamed into place by :func:`finish_adversarials`."""
    model, ds = job.model, job.ds
    pre = job.feed.pre if job.feed is not None else None
    shape = tuple(ds.inputs.shape[1:]) if isinstance(ds.inputs, torch.Tensor) else (pre.channels, *pre.size)
    meta = {"format": ADV_FORMAT, "labels": json.dumps(model.labels), "model": model.name,
            "checkpoint_sha256": model.sha256, "threat": threat, "dataset": ds.name, "split": ds.split}
    return StreamingImages(path, len(ds), shape, meta)


def finish_adversarials(out: StreamingImages, job: Job, records: list[Record], rerun: Callable[[KeepAdv], None]) -> None:
    """Complete the file: every attacked example's adversarial image (``rerun`` recomputes them when
    the records came back from ``--out`` without images), the clean image of every other example
    (as the model saw it), labels, ids and predictions."""
    ds = job.ds
    attacked = {p for p, r in enumerate(records) if r.clean_correct}
    if out.positions != attacked:
        rerun(out.write)
    rest = [p for p, r in enumerate(records) if not r.clean_correct]
    feed = job.feed or Feed(None, job.model.device)
    for batch in feed.batches(ds, [rest[i : i + 256] for i in range(0, len(rest), 256)]):
        out.write(batch.positions, batch.x)
    out.commit({
        "labels": ds.targets.clone(),
        "ids": torch.tensor(ds.ids, dtype=torch.long),
        "clean_preds": torch.tensor([r.clean_pred for r in records], dtype=torch.long),
        "adv_preds": torch.tensor([r.attacked_pred for r in records], dtype=torch.long),
    })


def attack(args: AttackArgs, on_note: Callable[[str], None] | None = None,
           on_progress: Callable[[str, int, int], None] | None = None) -> AttackReport:
    """Run ``args.threat`` on ``args.model`` and report clean/attacked accuracy, perturbations, cost
    (``on_note``: one-line notes on the run, e.g. -n above the split's size; ``on_progress(what,
    done, total)``: examples done in the clean pass, then in the attack)."""
    threat = apply_budget(build_threat(args.threat), args)
    if args.save_adv is not None and not args.save_adv.parent.is_dir():
        raise RobenchError(f"--save-adv {args.save_adv}: directory {args.save_adv.parent} does not exist; create it first")
    if args.save_adv is not None and threat.modality != "image":
        raise RobenchError("--save-adv supports image threats only")
    device = resolve_device(args.device)
    resolve_threads(args.threads)
    shard, device = resolve_shard(args.shard, args.out, device)
    if shard is not None and args.save_adv is not None:
        raise RobenchError("--save-adv writes the whole adversarial set: run it without --shard or torchrun")
    model = load_spec(args.model, args, device)
    if model.task == LM_TASK:
        raise RobenchError(f"{model.name} is a language model; measure its perplexity with `robench evaluate {args.model} --threat {threat.spec}`")
    check_modality(model, threat)
    threat.check_available()  # before the clean pass
    jobs = prepare(args, [model], on_note=on_note)
    if len(jobs) > 1:
        raise RobenchError(f"{args.dataset} has {len(jobs)} parts; `robench attack` takes one: give one part's folder "
                           "(imagenet:DIR/CORRUPTION/SEVERITY) or use `robench evaluate`")
    (job,) = jobs
    model = job.model  # ImageNet-A/R: logits restricted to the dataset's classes
    store = open_store(args, shard, run_config("attack", args, [job], [threat.spec], device, shard))
    start = time.perf_counter()
    clean_all = run_clean(job, args.batch_size, (lambda d, t: on_progress(f"{model.name} · clean", d, t)) if on_progress else None)
    ds = job.ds  # --skip-unreadable may have left examples out
    note_skipped(job, store, (lambda m: on_note(f"warning: {m}")) if on_note else None)
    key = record_key(model.name, ds.part)  # as evaluate stores one part of a dataset with several
    clean = complete(store.records(key, CLEAN, lambda journal: owned_clean(clean_all, shard, args.batch_size)), ds, shard)
    clean_row = make_row(job, CLEAN, clean, NO_PERTURBATION, time.perf_counter() - start, args.seed, device)
    flags = model_flags(model, ds, args.seed, job.feed)
    on_batch = (lambda d, t: on_progress(f"{model.name} · {threat.short}", d, t)) if on_progress else None
    adv = open_adversarials(args.save_adv, job, threat.spec) if args.save_adv is not None else None
    try:
        threat.warm_up()  # imports and WordNet's index: one-time costs, not the attack's seconds
        records = complete(store.records(key, threat.spec, lambda journal: attack_records(
            model, ds, threat, clean_all, args.batch_size, args.seed, keep_adv=adv.write if adv else None,
            journal=journal, shard=shard, amp=args.amp, feed=job.feed, on_batch=on_batch)), ds, shard)
        seconds = store.seconds  # compute time, also of batches a killed run journaled
        if shard is not None and shard.distributed:
            seconds = gather_max(seconds)
        row = make_row(job, threat.spec, records, threat.perturbation_unit, seconds, args.seed, device)
        attach([clean_row, row], {model.name: flags}, {})
        store.write_rows([clean_row, row])
        if adv is not None:
            finish_adversarials(adv, job, records, lambda keep: attack_records(
                model, ds, threat, clean, args.batch_size, args.seed, keep_adv=keep, amp=args.amp, feed=job.feed))
    finally:
        if adv is not None:
            adv.abort()  # no-op once committed: a failed run leaves no half-written file
    attacked = [r for r in records if r.clean_correct]
    broken = [r for r in attacked if not r.robust]
    shown = {r.id for r in broken[:5]}
    return AttackReport(
        clean_row=clean_row, row=row, records=records,
        max_linf=max((r.linf for r in attacked), default=0.0), max_l2=max((r.l2 for r in attacked), default=0.0),
        examples_per_second=len(attacked) / seconds if seconds > 0 else float("inf"),
        max_perturbation=max((r.perturbation for r in attacked), default=0.0),
        examples=broken[:5],
        labels=list(model.labels),
        originals={i: t for i, t in zip(ds.ids, ds.inputs) if i in shown} if threat.modality == "text" else {},
    )
