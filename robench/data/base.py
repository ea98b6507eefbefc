"""The in-memory dataset type shared by every modality, and seeded stratified sampling."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from robench.errors import RobenchError

if TYPE_CHECKING:
    from robench.data.sources import ImageSource

IMAGE, TEXT, LM = "image-classification", "text-classification", "language-modeling"  # card tasks


@dataclass(frozen=True)
class LabelSpace:
    """The larger label space a dataset's labels belong to (ImageNet-1k's 1,000 synsets for the
    ImageNet family, :mod:`robench.data.imagenet`).

    ``indices[i]`` is the index of the dataset's label ``i`` in ``names``. A model with one output
    per name is evaluated either with its logits restricted to ``indices`` (``restrict``: ImageNet-A
    and -R, as timm's validate.py does with ``--valid-labels``) or with the dataset's targets mapped
    into the whole space (a val folder holding some of the synsets).
    """

    name: str
    names: tuple[str, ...]
    indices: tuple[int, ...]
    restrict: bool = False


@dataclass
class Dataset:
    """One split of a labelled dataset.

    ``inputs`` is a float tensor ``(N, C, H, W)`` in [0, 1] for in-memory images, a lazy
    :class:`~robench.data.sources.ImageSource` (decoded on demand, :mod:`robench.data.loader`), or a
    list of strings for text; ``ids`` are stable example ids (the index in the full split) used in
    per-example records. ``sha256`` identifies the data (use :meth:`identity`: lazy sources compute
    it on first use, from the examples kept). ``real_labels`` holds ImageNet ReaL's label sets per
    example; ``part`` names one part of a dataset that expands into several (ImageNet-C's
    ``CORRUPTION/SEVERITY``).
    """

    name: str
    task: str
    split: str
    labels: list[str]
    inputs: torch.Tensor | list[str] | ImageSource
    targets: torch.Tensor
    ids: list[int]
    sha256: str
    label_space: LabelSpace | None = None
    real_labels: list[tuple[str, ...]] | None = None  # ReaL: the label names each image may have
    part: str = ""

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def lazy(self) -> bool:
        """True when the images stay on disk until a batch needs them."""
        return not isinstance(self.inputs, (torch.Tensor, list))

    def identity(self) -> str:
        """The data's sha256: content hash in memory; for lazy sources the files' identity
        (:meth:`ImageSource.identity`) and the labels, computed once, over the examples kept."""
        if not self.sha256:
            if not self.lazy:
                self.sha256 = content_sha256(self.inputs, self.targets)
            else:
                h = hashlib.sha256(self.inputs.identity().encode())
                h.update("\0".join(self.labels).encode("utf-8"))
                h.update(self.targets.to(torch.int64).numpy().tobytes())
                self.sha256 = h.hexdigest()
        return self.sha256

    def subset(self, indices: Sequence[int]) -> "Dataset":
        idx = list(indices)
        sha = self.sha256
        if isinstance(self.inputs, torch.Tensor):
            inputs = self.inputs[torch.as_tensor(idx, dtype=torch.long)]
        elif isinstance(self.inputs, list):
            inputs = [self.inputs[i] for i in idx]
        else:
            inputs, sha = self.inputs.subset(idx), ""  # the identity of what is kept, computed when asked
        real = None if self.real_labels is None else [self.real_labels[i] for i in idx]
        return replace(
            self, inputs=inputs, targets=self.targets[torch.as_tensor(idx, dtype=torch.long)],
            ids=[self.ids[i] for i in idx], sha256=sha, real_labels=real,
        )

    def batches(self, batch_size: int):
        """Yield ``(positions, inputs, targets)`` in order."""
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            yield range(start, stop), self.inputs[start:stop], self.targets[start:stop]


def content_sha256(inputs: torch.Tensor | list[str], targets: torch.Tensor) -> str:
    """A content hash of a split: identical data gives the same hash whatever its source file."""
    h = hashlib.sha256()
    if isinstance(inputs, torch.Tensor):
        h.update(str(tuple(inputs.shape)).encode())
        h.update(inputs.to(torch.float32).contiguous().numpy().tobytes())
    else:
        for t in inputs:
            h.update(t.encode("utf-8"))
            h.update(b"\0")
    h.update(targets.to(torch.int64).numpy().tobytes())
    return h.hexdigest()


def stratified_split(targets: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split; returns sorted ``(train_idx, test_idx)``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_sample(targets: torch.Tensor | np.ndarray, n: int, seed: int) -> list[int]:
    """Seeded sample of ``n`` positions keeping class proportions (largest-remainder allocation).

    Returned in ascending order, so a sample never depends on the file's sort order beyond ids.
    """
    t = np.asarray(targets)
    total = len(t)
    if n <= 0:
        raise RobenchError(f"-n/--num-examples must be positive, got {n}")
    if n >= total:
        return list(range(total))
    classes, counts = np.unique(t, return_counts=True)
    quota = counts * n / total
    alloc = np.floor(quota).astype(int)
    # Largest remainders get the leftover slots; ties broken by class order (deterministic).
    for i in np.argsort(-(quota - alloc), kind="stable")[: n - alloc.sum()]:
        alloc[i] += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for c, k in zip(classes, alloc):
        idx = np.flatnonzero(t == c)
        chosen.append(idx[rng.permutation(len(idx))[:k]])
    return sorted(int(i) for i in np.concatenate(chosen))
