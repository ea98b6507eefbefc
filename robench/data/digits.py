"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images), scaled to [0, 1].

Split 80/20, stratified, with a fixed seed (the split is part of the dataset's definition, not of
any run's seed).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from robench.data.base import IMAGE, Dataset, content_sha256, stratified_split
from robench.data.registry import register_dataset
from robench.errors import RobenchError

SPLIT_SEED = 0
TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # pixel values are 0..16
    return images, bunch.target.astype(np.int64)


@register_dataset("digits")
def load_digits_split(split: str) -> Dataset:
    """The ``train`` (1,437) or ``test`` (360) split of the digits dataset."""
    images, targets = _arrays()
    train_idx, test_idx = stratified_split(targets, TEST_FRACTION, SPLIT_SEED)
    splits = {"train": train_idx, "test": test_idx}
    if split not in splits:
        raise RobenchError(f"dataset 'digits' has splits train, test; got {split!r}")
    idx = splits[split]
    x = torch.from_numpy(images[idx]).unsqueeze(1)
    y = torch.from_numpy(targets[idx])
    return Dataset(
        name="digits", task=IMAGE, split=split, labels=[str(i) for i in range(10)],
        inputs=x, targets=y, ids=[int(i) for i in idx], sha256=content_sha256(x, y),
    )
