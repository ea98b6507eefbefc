"""Batches of images as one model takes them, decoded on demand in DataLoader worker processes.

In-memory image datasets (digits, MNIST idx files, small ``--save-adv`` sets) are sliced as they
are. Lazy sources (:mod:`robench.data.sources`: image trees, image tables, Arrow datasets) go
through a ``torch.utils.data.DataLoader`` whose batch sampler is the list of position batches
the caller asks for, so only those files are ever opened: ``workers`` processes decode and
transform (timm's eval transform, :mod:`robench.data.preprocess`) while the main process runs the
model, each batch travels as uint8 (pinned on CUDA, copied non-blocking) and becomes float in
[0, 1] on the device, as timm's prefetcher does. Memory is O(batch x workers), never O(dataset).

An item that cannot be read or decoded is reported with its file name: the caller either stops
with one line naming it or, with ``--skip-unreadable``, leaves it out of the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch

from robench.data.base import Dataset
from robench.data.preprocess import Preprocessing
from robench.data.sources import ImageSource, UnreadableImage, describe
from robench.errors import RobenchError


def default_workers() -> int:
    """Decoding processes when ``--workers`` is not given: half the cores, at most 8, at least 1.

    Half, because the main process computes the model (and attacks) with the other half; on this
    project's 2-core machine that is one worker, which decodes and crops a 224 px JPEG in a few ms,
    well ahead of a ViT-tiny forward pass on the CPU (benchmarks/imagenet_stream.py measures it).
    """
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def unreadable_error(where: str, reason: str) -> RobenchError:
    return RobenchError(
        f"image {where} cannot be decoded ({reason}); remove or replace the file, or pass --skip-unreadable "
        "to leave unreadable images out of the run (a warning counts them; --out DIR's run.json lists them)"
    )


def check_pixels(x: torch.Tensor, name: str) -> None:
    """Float images must be finite and in [0, 1] (the pixel space every eps is measured in)."""
    if not bool(torch.isfinite(x).all()):
        raise RobenchError(f"dataset {name!r} has NaN or inf pixels; fix or drop those images")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise RobenchError(f"dataset {name!r}: pixels must be in [0, 1], found {float(x.min()):.4g}..{float(x.max()):.4g} "
                           "(8-bit images: divide by 255)")


@dataclass
class Batch:
    """One batch: dataset positions, inputs on the device, labels, and the items that failed."""

    positions: list[int]
    x: torch.Tensor
    y: torch.Tensor
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (position, where, reason)


class _Items(torch.utils.data.Dataset):
    """What a worker computes for one position: the transformed image, or why it failed."""

    def __init__(self, source: ImageSource, pre: Preprocessing | None, augment: bool = False) -> None:
        self.source = source
        self.pre = pre
        if source.presized or pre is None:
            self.transform = None
        else:
            self.transform = pre.train_transform() if augment else pre.transform()
        self.mode = pre.mode if pre is not None else "RGB"

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, pos: int):
        try:
            img = self.source.load(pos, self.mode)
        except UnreadableImage as e:
            return pos, None, e.where, e.reason
        try:
            x = img if self.transform is None else self.transform(img)
        except Exception as e:  # an image PIL opened but the transform cannot take (a degenerate size)
            return pos, None, self.source.where(pos), describe(e)
        return pos, x, "", ""


def _collate(items):
    ok = [(p, x) for p, x, _, _ in items if x is not None]
    failed = [(p, w, r) for p, x, w, r in items if x is None]
    x = torch.stack([x for _, x in ok]) if ok else None
    return [p for p, _ in ok], x, failed


@dataclass(frozen=True)
class Feed:
    """How a model's images reach it: preprocessing, decoding processes, device."""

    pre: Preprocessing | None
    device: torch.device
    workers: int = 0
    skip_unreadable: bool = False
    augment: bool = False  # timm's train transform instead of the eval one (robench train --augment)

    def batches(self, ds: Dataset, position_batches: Iterable[Sequence[int]], seed: int | None = None) -> Iterator[Batch]:
        """The batches of ``ds`` at the given positions, in the order given (``seed`` fixes the
        worker processes' random state, for augmentation)."""
        if isinstance(ds.inputs, torch.Tensor):
            for pos in position_batches:
                idx = torch.as_tensor(list(pos), dtype=torch.long)
                yield Batch(list(pos), ds.inputs[idx].to(self.device), ds.targets[idx].to(self.device))
            return
        if not isinstance(ds.inputs, ImageSource):
            raise TypeError("Feed.batches takes image datasets")
        plan = [list(p) for p in position_batches if len(p)]
        if not plan:
            return
        cuda = self.device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            _Items(ds.inputs, self.pre, self.augment), batch_sampler=plan, collate_fn=_collate, num_workers=self.workers,
            pin_memory=cuda, prefetch_factor=2 if self.workers else None,
            generator=None if seed is None else torch.Generator().manual_seed(seed),
        )
        for positions, x, failed in loader:
            if failed and not self.skip_unreadable:
                _, where, reason = failed[0]
                raise unreadable_error(where, reason)
            if x is None:
                x = torch.zeros(0, *self.shape(), dtype=torch.uint8)
            if x.dtype != torch.uint8:  # pre-sized float images (--save-adv files): the in-memory checks, per batch
                check_pixels(x, ds.name)
            x = x.to(self.device, non_blocking=cuda)
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
            idx = torch.as_tensor(positions, dtype=torch.long)
            yield Batch(positions, x, ds.targets[idx].to(self.device), failed)

    def shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one transformed image (an empty batch still has it)."""
        return (3, 0, 0) if self.pre is None else (self.pre.channels, *self.pre.size)

    def tensor(self, ds: Dataset, positions: Sequence[int] | None = None) -> torch.Tensor:
        """The images at ``positions`` (default: all) as one CPU float tensor: for small probes only."""
        positions = list(range(len(ds))) if positions is None else list(positions)
        if isinstance(ds.inputs, torch.Tensor):
            return ds.inputs[torch.as_tensor(positions, dtype=torch.long)]
        parts = [b.x.cpu() for b in self.batches(ds, [positions[i : i + 256] for i in range(0, len(positions), 256)])]
        return torch.cat(parts) if parts else torch.zeros(0, *self.shape())
