"""Dataset registry: name -> loader ``fn(split) -> Dataset``, filled by a decorator."""

from __future__ import annotations

from typing import Callable

from robench.data.base import Dataset
from robench.errors import RobenchError

Loader = Callable[[str], Dataset]
_DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(split) -> Dataset`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        _DATASETS[name] = fn
        return fn

    return deco


def _ensure_builtin() -> None:
    from robench.data import digits, wordnet_topics  # noqa: F401


def list_datasets() -> list[str]:
    _ensure_builtin()
    return sorted(_DATASETS)


def load_dataset(name: str, split: str = "test") -> Dataset:
    """Load a registered dataset split (or a ``--save-adv`` file); bad names are a one-line error."""
    _ensure_builtin()
    if name.endswith((".tsv", ".csv")):
        from pathlib import Path

        from robench.data.files import load_table

        return load_table(Path(name))
    if name.endswith(".safetensors"):
        from pathlib import Path

        from robench.data.adversarial import load_adversarial

        ds = load_adversarial(Path(name))
        if len(ds) == 0:
            raise RobenchError(f"dataset file {name} is empty")
        return ds
    try:
        loader = _DATASETS[name]
    except KeyError:
        raise RobenchError(f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(_DATASETS))}") from None
    ds = loader(split)
    if len(ds) == 0:
        raise RobenchError(f"dataset {name!r} split {split!r} is empty")
    return ds
