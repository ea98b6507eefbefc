"""Sharded evaluation: ``--shard i/n`` for batch schedulers, torch.distributed under torchrun.

The examples of a run are cut into the same fixed batches in every process (slices of the
correctly classified examples, each seeded by its position, see :mod:`robench.engine.runner`); shard ``i``
of ``n`` attacks batches ``i, i+n, i+2n, ...`` and records the examples of those batches, plus the
not-attacked (misclassified) examples at positions ``p`` with ``p % n == i``, plus the clean records
of those same examples (:func:`owned_positions`), so all rows of a shard count the same examples.
Every record therefore belongs to exactly one shard, and the union of the shards is, record for
record, the single-process run.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the shard is the process's rank: gloo
on CPU, nccl on GPU (each rank on ``cuda:LOCAL_RANK``). Records are gathered to every rank after
each (model, threat); rank 0 renders and writes exports, the other ranks stay quiet.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robench.errors import RobenchError

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from robench.data.base import Dataset
    from robench.results.records import Record


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    distributed: bool = False  # a torchrun rank (records are gathered) rather than a --shard process

    @property
    def name(self) -> str:
        """The folder of this shard's records under ``--out``."""
        return f"shard-{self.index}-of-{self.count}"

    def owns_batch(self, k: int) -> bool:
        return k % self.count == self.index

    def owns_position(self, p: int) -> bool:
        return p % self.count == self.index


def owned_positions(shard: Shard, clean_correct: list[bool], batch_size: int) -> set[int]:
    """Dataset positions whose records ``shard`` keeps under every threat of a model: the attacked
    (correctly classified) examples of the batches it attacks (slices of ``batch_size`` attacked
    examples, batch ``k`` owned when ``k % n == i``; :func:`robench.engine.runner.attack_records` cuts the
    same slices) and the not-attacked examples at positions ``p % n == i``. The clean records follow
    the same set, so a shard's clean row and its attack rows count the same examples."""
    attacked = [p for p, ok in enumerate(clean_correct) if ok]
    owned = {p for p, ok in enumerate(clean_correct) if not ok and shard.owns_position(p)}
    for k, start in enumerate(range(0, len(attacked), batch_size)):
        if shard.owns_batch(k):
            owned.update(attacked[start : start + batch_size])
    return owned


SHARD_DIR = re.compile(r"shard-(\d+)-of-(\d+)")


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> :class:`Shard`; ``0 <= i < n``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m.group(2)) or int(m.group(1)) >= int(m.group(2)):
        raise RobenchError(f"--shard {text!r}: expected i/n with 0 <= i < n (e.g. 0/4 ... 3/4)")
    return Shard(int(m.group(1)), int(m.group(2)))


def world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_from_env(device: torch.device) -> tuple[Shard | None, torch.device]:
    """Under torchrun: join the process group (nccl for CUDA, gloo otherwise) and return this rank's
    shard and device; otherwise ``(None, device)``."""
    if world_size() <= 1:
        return None, device
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size(), distributed=True), device


def is_main_process() -> bool:
    """False on torchrun ranks other than 0 (they stay quiet and write no exports); known from the
    environment torchrun sets, so it holds before the process group exists."""
    return world_size() <= 1 or os.environ.get("RANK", "0") == "0"


def gather_records(records: list[Record], order: dict[int, int]) -> list[Record]:
    """Every rank's records, merged into dataset order (``order``: example id -> position)."""
    import torch.distributed as dist

    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, records)
    merged = [r for part in parts for r in part]
    return sorted(merged, key=lambda r: order[r.id])


def gather_max(value: float) -> float:
    """The largest ``value`` over ranks (wall time of a sharded step is the slowest rank's)."""
    import torch.distributed as dist

    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, value)
    return max(parts)


def resolve_shard(spec: str | None, out: Path | None, device: torch.device) -> tuple[Shard | None, torch.device]:
    """This process's shard: a torchrun rank, ``--shard i/n`` (``spec``), or None (the whole run)."""
    shard, device = init_from_env(device)
    if shard is not None and spec:
        raise RobenchError("--shard and torchrun both split the run; use one of them")
    if spec:
        shard = parse_shard(spec)
        if out is None:
            raise RobenchError("--shard needs --out DIR: `robench merge DIR` combines the shards' records from there")
    return shard, device


def shard_out(out: Path | None, shard: Shard | None) -> Path | None:
    """Where this process keeps its records: ``--out DIR/shard-i-of-n`` for a shard, else ``out``."""
    return out / shard.name if shard is not None and out is not None else out


def owned_clean(clean: list[Record], shard: Shard | None, batch_size: int) -> list[Record]:
    """The clean records this shard keeps (all of them without sharding): those of the examples its
    attack records cover (:func:`owned_positions`), so every row of a shard is about the same
    examples (a clean n of 25 beside an attack over 49 compared different sets)."""
    if shard is None:
        return clean
    owned = owned_positions(shard, [r.clean_correct for r in clean], batch_size)
    return [r for p, r in enumerate(clean) if p in owned]


def complete(records: list[Record], ds: Dataset, shard: Shard | None) -> list[Record]:
    """Under torchrun, every rank's records of one (model, threat) in dataset order; else as given."""
    if shard is None or not shard.distributed:
        return records
    return gather_records(records, {i: p for p, i in enumerate(ds.ids)})
