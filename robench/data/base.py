"""The in-memory dataset type shared by every modality, and seeded stratified sampling."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from robench.errors import RobenchError

IMAGE, TEXT, LM = "image-classification", "text-classification", "language-modeling"  # card tasks


@dataclass
class Dataset:
    """One split of a labelled dataset.

    ``inputs`` is a float tensor ``(N, C, H, W)`` in [0, 1] for images or a list of strings for
    text; ``ids`` are stable example ids (the index in the full split) used in per-example records.
    """

    name: str
    task: str
    split: str
    labels: list[str]
    inputs: torch.Tensor | list[str]
    targets: torch.Tensor
    ids: list[int]
    sha256: str

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: Sequence[int]) -> "Dataset":
        idx = list(indices)
        if isinstance(self.inputs, torch.Tensor):
            inputs = self.inputs[torch.as_tensor(idx, dtype=torch.long)]
        else:
            inputs = [self.inputs[i] for i in idx]
        return replace(
            self, inputs=inputs, targets=self.targets[torch.as_tensor(idx, dtype=torch.long)],
            ids=[self.ids[i] for i in idx],
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
