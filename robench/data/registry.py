"""Dataset registry: name -> loader ``fn(split) -> Dataset``, filled by a decorator."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable

from robench.data.base import Dataset, content_sha256
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


def load_datasets(name: str, split: str = "test", columns: dict[str, str | None] | None = None) -> list[Dataset]:
    """The dataset(s) a source stands for: one, or one per part (``imagenet-c:DIR``: one per
    corruption and severity, see :mod:`robench.data.imagenet`)."""
    from robench.data.imagenet import load_imagenet, split_source

    if split_source(name) is not None:
        return [_non_empty(ds, split) for ds in load_imagenet(name)]
    return [load_dataset(name, split, columns)]


def load_dataset(name: str, split: str = "test", columns: dict[str, str | None] | None = None) -> Dataset:
    """Load a dataset by registered name or by source (bad names are a one-line error):

    ``file.tsv``/``file.csv`` (text tables, or image tables: a column of image paths), ``*-images-idx3-ubyte[.gz]``
    (MNIST idx), an image folder (``DIR/CLASS/*.jpg``, any sizes), the ImageNet family (``imagenet:DIR``,
    ``imagenet-a:DIR``, ... see :mod:`robench.data.imagenet`; ``imagenet-c:DIR`` has several parts: use
    :func:`load_datasets`), a ``save_to_disk`` folder, ``file.json[l]``/``file.parquet``, ``hf:NAME[:CONFIG]``
    (hub, online only) and ``--save-adv`` files. ``columns`` names the text/label/image columns of tables.
    Image folders, image tables and Arrow image datasets are lazy: nothing is decoded here.

    Any of these may end in a slice of positions, ``SOURCE[a:b]`` (Python slice bounds, either may be
    left out), e.g. ``t10k-images-idx3-ubyte.gz[:8000]`` to train and ``[8000:]`` to evaluate: example
    ids stay those of the whole source, and the content hash is that of the slice.
    """
    sliced = parse_slice(name)
    if sliced is not None:
        base, lo, hi = sliced
        ds = load_dataset(base, split, columns)
        kept = range(len(ds))[lo:hi]
        if len(kept) == 0:
            raise RobenchError(f"dataset slice {name!r} is empty: {base!r} has {len(ds)} examples")
        part = ds.subset(kept)
        return _non_empty(replace(part, name=name, sha256=content_sha256(part.inputs, part.targets)), split)
    from pathlib import Path

    _ensure_builtin()
    columns = columns or {}
    path = Path(name)
    from robench.data.imagenet import split_source

    if split_source(name) is not None:
        parts = load_datasets(name, split, columns)
        if len(parts) > 1:
            raise RobenchError(f"{name} has {len(parts)} parts (one per corruption and severity); "
                               "evaluate it with robench evaluate, or pick one folder: imagenet:DIR/CORRUPTION/SEVERITY")
        return parts[0]
    if name.endswith((".tsv", ".csv")):
        from robench.data.files import load_table
        from robench.data.images import is_image_table, load_image_table

        if is_image_table(path, columns):
            return _non_empty(load_image_table(path, columns), split)
        return _non_empty(load_table(path, columns), split)
    if name.startswith("hf:") or name.endswith((".json", ".jsonl", ".parquet")) or (path / "dataset_info.json").is_file() \
            or (path / "dataset_dict.json").is_file():
        from robench.data.hf import load_hf

        return _non_empty(load_hf(name, split, columns), split)
    if "idx3-ubyte" in path.name:
        from robench.data.images import load_idx

        return _non_empty(load_idx(path), split)
    if path.is_dir():
        from robench.data.images import load_image_folder

        return _non_empty(load_image_folder(path), split)
    if name.endswith(".safetensors"):
        from pathlib import Path

        from robench.data.adversarial import load_adversarial

        return _non_empty(load_adversarial(Path(name)), split)
    try:
        loader = _DATASETS[name]
    except KeyError:
        raise RobenchError(f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(_DATASETS))}") from None
    return _non_empty(loader(split), split)


_SLICE = re.compile(r"^(?P<base>.+)\[(?P<lo>-?\d*):(?P<hi>-?\d*)\]$")


def parse_slice(name: str) -> tuple[str, int | None, int | None] | None:
    """``SOURCE[a:b]`` -> ``(SOURCE, a, b)`` (``None`` for an omitted bound); other names -> ``None``."""
    m = _SLICE.match(name)
    if m is None:
        return None
    lo, hi = m["lo"], m["hi"]
    return m["base"], int(lo) if lo else None, int(hi) if hi else None


def _non_empty(ds: Dataset, split: str) -> Dataset:
    """Every loaded split is checked here: non-empty, labels in range, images finite in [0, 1]."""
    import torch

    if len(ds) == 0:
        raise RobenchError(f"dataset {ds.name!r} split {split!r} is empty")
    lo, hi = int(ds.targets.min()), int(ds.targets.max())
    if lo < 0 or hi >= len(ds.labels):
        raise RobenchError(f"dataset {ds.name!r}: label {lo if lo < 0 else hi} is out of range for its "
                           f"{len(ds.labels)} label names; labels must be 0..{len(ds.labels) - 1}")
    if isinstance(ds.inputs, torch.Tensor):
        x = ds.inputs
        if x.ndim != 4:
            raise RobenchError(f"dataset {ds.name!r}: images must be (N, C, H, W), got shape {tuple(x.shape)}")
        from robench.data.loader import check_pixels

        check_pixels(x, ds.name)
    return ds
