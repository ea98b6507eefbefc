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


def list_datasets() -> list[str]:
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
    (hub, online only) and ``--save-adv`` files. ``columns`` names the text/label/image columns of tables
    and, under ``"labels"``, a ``--labels FILE`` of label names fixing the label order
    (:func:`robench.data.labels.align_labels`).
    Image folders, image tables and Arrow image datasets are lazy: nothing is decoded here.

    Any of these may end in a slice of positions, ``SOURCE[a:b]`` (Python slice bounds, either may be
    left out), e.g. ``t10k-images-idx3-ubyte.gz[:8000]`` to train and ``[8000:]`` to evaluate: example
    ids stay those of the whole source, and the content hash is that of the slice.
    """
    columns = columns or {}
    sliced = parse_slice(name)
    if sliced is not None:
        base, lo, hi = sliced
        ds = load_dataset(base, split, columns)
        kept = range(len(ds))[lo:hi]
        if len(kept) == 0:
            raise RobenchError(f"dataset slice {name!r} is empty: {base!r} has {len(ds)} examples")
        part = ds.subset(kept)  # lazy sources: their identity is computed over the slice when asked
        sha = "" if part.lazy else content_sha256(part.inputs, part.targets)
        return _non_empty(replace(part, name=name, sha256=sha), split)
    ds = _non_empty(_load_source(name, split, columns), split)
    if columns.get("labels"):
        from robench.data.labels import align_labels, read_label_file

        ds = align_labels(ds, read_label_file(columns["labels"]), f"the --labels file {columns['labels']}",
                          "add them to that file (one name per line) or drop those examples")
    return ds


def _load_source(name: str, split: str, columns: dict[str, str | None]) -> Dataset:
    from pathlib import Path

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
            return load_image_table(path, columns)
        return load_table(path, columns)
    if name.startswith("hf:") or name.endswith((".json", ".jsonl", ".parquet")) or (path / "dataset_info.json").is_file() \
            or (path / "dataset_dict.json").is_file():
        from robench.data.hf import load_hf

        return load_hf(name, split, columns)
    if "idx3-ubyte" in path.name:
        from robench.data.images import load_idx

        return load_idx(path)
    if path.is_dir():
        from robench.data.images import load_image_folder

        return load_image_folder(path)
    if name.endswith(".safetensors"):
        from robench.data.adversarial import load_adversarial

        return load_adversarial(path)
    try:
        loader = _DATASETS[name]
    except KeyError:
        raise RobenchError(f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(_DATASETS))}") from None
    return loader(split)


def takes_split(name: str) -> bool:
    """Whether ``--split`` means something for ``name``: registered datasets, ``hf:`` hub names and
    ``save_to_disk`` DatasetDict folders have named splits; a single file (table, JSON, parquet,
    idx, ``--save-adv``), an image folder or a one-split ``save_to_disk`` folder is one split."""
    from pathlib import Path

    sliced = parse_slice(name)
    base = sliced[0] if sliced else name
    path = Path(base)
    if base.startswith("hf:") or (path / "dataset_dict.json").is_file():
        return True
    if path.exists() or base.endswith((".tsv", ".csv", ".json", ".jsonl", ".parquet", ".safetensors")) or "idx3-ubyte" in base:
        return False
    return True  # a registered name, or an unknown one (load_dataset names the choices)


def check_split(name: str, split: str, default: str = "test") -> None:
    """Refuse ``--split`` on a one-split source rather than ignore it (the rows would claim a split
    that was never read)."""
    if split != default and not takes_split(name):
        raise RobenchError(f"--split {split}: dataset {name} is a single file or folder, one split, so a split cannot "
                           "be chosen in it; pass that split's own file as --dataset (registered datasets, hf:NAME and "
                           "save_to_disk DatasetDict folders have named splits)")


_SLICE = re.compile(r"^(?P<base>.+)\[(?P<lo>-?\d*):(?P<hi>-?\d*)\]$")
_BRACKETS = re.compile(r"^(?P<base>.+)\[(?P<body>[^\[\]]*:[^\[\]]*)\]$")  # [...:...]: meant as a slice


def parse_slice(name: str) -> tuple[str, int | None, int | None] | None:
    """``SOURCE[a:b]`` -> ``(SOURCE, a, b)`` (``None`` for an omitted bound); other names -> ``None``.

    A name ending in a bracketed colon without integer bounds (``dev.tsv[a:b]``, ``[::2]``) is an
    error naming the slice syntax, unless a file of that very name exists.
    """
    from pathlib import Path

    m = _SLICE.match(name)
    if m is None:
        like = _BRACKETS.match(name)
        if like is not None and not Path(name).exists():
            base = like["base"]
            raise RobenchError(f"dataset {name!r}: [{like['body']}] is not a slice of positions; write SOURCE[START:STOP] "
                               f"with integers, either one may be left out (e.g. {base}[:100] or {base}[100:])")
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
