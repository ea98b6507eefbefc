"""``robench.attack``: one threat on one checkpoint, in detail, optionally saving the adversarials."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from robench.data.adversarial import ADV_FORMAT
from robench.data.base import LM as LM_TASK
from robench.device import resolve_device
from robench.errors import RobenchError
from robench.distributed import gather_max
from robench.evaluate import (
    CLEAN, RunArgs, apply_budget, clean_records, complete, load_spec, make_row, owned_clean, prepare, resolve_shard,
    run_config, shard_out,
)
from robench.fileio import atomic_write_bytes
from robench.loading import LoadedModel
from robench.results.records import Record
from robench.results.schema import ResultRow
from robench.results.store import RecordStore
from robench.runner import attack_records, check_modality
from robench.sanity import attach, model_flags
from robench.threats.registry import build_threat


@dataclass(kw_only=True)
class AttackArgs(RunArgs):
    """Arguments of ``robench attack`` (shared by the CLI and the Python API)."""

    model: str
    threat: str
    save_adv: Path | None = None


@dataclass
class AttackReport:
    clean_row: ResultRow
    row: ResultRow
    records: list[Record]
    max_linf: float
    max_l2: float
    examples_per_second: float
    examples: list[Record] = field(default_factory=list)
    originals: dict[int, str] = field(default_factory=dict)  # example id -> clean text (text threats)
    labels: list[str] = field(default_factory=list)


def save_adversarials(path: Path, model: LoadedModel, ds, records: list[Record], adv: dict[int, torch.Tensor], threat: str) -> None:
    """All examples of the run (adversarial where attacked, clean otherwise) as safetensors."""
    from safetensors.torch import save

    images = ds.inputs.clone()
    for pos, x in adv.items():
        images[pos] = x
    tensors = {
        "images": images.contiguous(),
        "labels": ds.targets.clone(),
        "ids": torch.tensor(ds.ids, dtype=torch.long),
        "clean_preds": torch.tensor([r.clean_pred for r in records], dtype=torch.long),
        "adv_preds": torch.tensor([r.attacked_pred for r in records], dtype=torch.long),
    }
    meta = {"format": ADV_FORMAT, "labels": json.dumps(model.labels), "model": model.name,
            "checkpoint_sha256": model.sha256, "threat": threat, "dataset": ds.name, "split": ds.split}
    atomic_write_bytes(path, save(tensors, metadata=meta))


def attack(args: AttackArgs, on_note: Callable[[str], None] | None = None) -> AttackReport:
    """Run ``args.threat`` on ``args.model`` and report clean/attacked accuracy, perturbations, cost
    (``on_note``: one-line notes on the run, e.g. -n above the split's size)."""
    threat = apply_budget(build_threat(args.threat), args)
    if args.save_adv is not None and not args.save_adv.parent.is_dir():
        raise RobenchError(f"--save-adv {args.save_adv}: directory {args.save_adv.parent} does not exist; create it first")
    if args.save_adv is not None and threat.modality != "image":
        raise RobenchError("--save-adv supports image threats only")
    device = resolve_device(args.device)
    shard, device = resolve_shard(args, device)
    if shard is not None and args.save_adv is not None:
        raise RobenchError("--save-adv writes the whole adversarial set: run it without --shard or torchrun")
    model = load_spec(args.model, args, device)
    if model.task == LM_TASK:
        raise RobenchError(f"{model.name} is a language model; measure its perplexity with `robench evaluate {args.model} --threat {threat.spec}`")
    check_modality(model, threat)
    (job,) = prepare(args, [model], on_note=on_note)
    ds = job.ds
    store = RecordStore(shard_out(args, shard), run_config("attack", args, [job], [threat.spec], device, shard))
    flags = model_flags(model, ds, args.seed)
    start = time.perf_counter()
    clean_all = clean_records(model, ds, args.batch_size)
    clean = complete(store.records(model.name, CLEAN, lambda journal: owned_clean(clean_all, shard)), ds, shard)
    clean_row = make_row(model, ds, CLEAN, clean, "none", time.perf_counter() - start, args.seed, device)
    adv: dict[int, torch.Tensor] | None = {} if args.save_adv is not None else None
    start = time.perf_counter()
    records = complete(store.records(model.name, threat.spec, lambda journal: attack_records(
        model, ds, threat, clean_all, args.batch_size, args.seed, keep_adv=adv, journal=journal, shard=shard,
        amp=args.amp)), ds, shard)
    seconds = time.perf_counter() - start
    if shard is not None and shard.distributed:
        seconds = gather_max(seconds)
    row = make_row(model, ds, threat.spec, records, threat.norm, seconds, args.seed, device)
    attach([clean_row, row], {model.name: flags}, {})
    store.write_rows([clean_row, row])
    if args.save_adv is not None:
        if len(adv) != sum(r.clean_correct for r in records):  # records read back from --out: no images
            adv = {}
            attack_records(model, ds, threat, clean, args.batch_size, args.seed, keep_adv=adv, amp=args.amp)
        save_adversarials(args.save_adv, model, ds, records, adv, threat.spec)
    attacked = [r for r in records if r.clean_correct]
    broken = [r for r in attacked if not r.robust]
    shown = {r.id for r in broken[:5]}
    return AttackReport(
        clean_row=clean_row, row=row, records=records,
        max_linf=max((r.linf for r in attacked), default=0.0), max_l2=max((r.l2 for r in attacked), default=0.0),
        examples_per_second=len(attacked) / seconds if seconds > 0 else float("inf"),
        examples=broken[:5],
        labels=list(model.labels),
        originals={i: t for i, t in zip(ds.ids, ds.inputs) if i in shown} if threat.modality == "text" else {},
    )
