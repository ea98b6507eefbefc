"""A run's configuration (``run.json``) and its records store under ``--out``.

What changes the records of a run is written down before any work, so a resume (``--out`` again)
or ``robench merge`` refuses records of another run instead of mixing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from robench import __version__
from robench.device import amp_name
from robench.engine.distributed import Shard, shard_out
from robench.results.store import RecordStore, config_hash

if TYPE_CHECKING:
    from robench.engine.args import RunArgs
    from robench.engine.jobs import Job


def run_config(command: str, args: RunArgs, jobs: list[Job], threats: list[str], device: torch.device,
               shard: Shard | None = None) -> dict:
    """Everything that changes the records of a run: what ``--out`` resumes (and merges) must match it."""
    data = []
    for j in jobs:
        entry = [j.ds.name, j.ds.split, j.ds.identity(), len(j.ds)]
        if j.preprocessing:  # file-backed images: what they go through is part of the data
            entry.append(j.preprocessing)
        data.append(entry)
    config = {
        "shard": [shard.index, shard.count] if shard else None,
        "command": command,
        # the contract too: a card's mean/std or an hf: folder's processor can change beside the same weights
        "models": [[j.model.name, j.model.sha256, config_hash(j.model.card.preprocessing)] for j in jobs],
        "data": data,
        "num_examples": args.num_examples, "seed": args.seed, "batch_size": args.batch_size,
        "query_budget": args.query_budget, "threats": threats, "device": device.type, "amp": amp_name(args.amp, device),
        "robench_version": __version__,
    }
    if args.use_ema:  # other weights of the same files; absent otherwise, so earlier runs' configs still match
        config["use_ema"] = True
    return config


def open_store(args: RunArgs, shard: Shard | None, config: dict) -> RecordStore:
    """The run's records store, with its CPU threads noted in run.json (outside the config hash: a
    resume or a merge on a machine with another core count still matches)."""
    store = RecordStore(shard_out(args.out, shard), config)
    store.annotate("threads", torch.get_num_threads())
    return store


def note_skipped(job: Job, store: RecordStore, on_warning: Callable[[str], None] | None) -> None:
    """``--skip-unreadable``: say which images were left out, and keep the list in run.json."""
    if not job.skipped:
        return
    store.annotate("skipped_unreadable", {job.ds.name + (f" [{job.ds.part}]" if job.ds.part else ""): job.skipped})
    if on_warning:
        on_warning(f"{job.model.name}: {len(job.skipped)} unreadable image(s) left out of {job.ds.name} "
                   f"(--skip-unreadable), e.g. {job.skipped[0]}")
