"""Derived seeds: one run seed mixed with where a draw happens, through numpy's ``SeedSequence``.

Every random draw in robench is seeded by ``(run seed, purpose, position...)``, so a batch, an
example or a diagnostic draw gets the same randomness in any order, shard or batch size.
``SeedSequence`` hashes its entropy words (any non-negative integers) into well-mixed, independent
streams; the purposes below keep a batch seed from ever equalling an example seed.
"""

from __future__ import annotations

import numpy as np

BATCH, EXAMPLE, DIAGNOSE = 0, 1, 2  # purposes: the second entropy word


def derive_seed(seed: int, purpose: int, *where: int) -> int:
    """A seed in [0, 2**63) for draw ``where`` of ``purpose`` in a run seeded by ``seed``."""
    state = np.random.SeedSequence([seed, purpose, *where]).generate_state(1, np.uint64)[0]
    return int(state) >> 1  # torch and numpy take seeds below 2**63


def batch_seed(seed: int, start: int) -> int:
    """Seed of the attacked batch starting at position ``start``: independent of model order."""
    return derive_seed(seed, BATCH, start)


def example_seed(seed: int, example_id: int) -> int:
    """Per-example seed: the same (seed, id) gives the same randomness in any batch or order."""
    return derive_seed(seed, EXAMPLE, example_id)
