"""Image datasets on disk: MNIST-style idx files (in memory), class-per-folder image trees and
tables of image paths (lazy: listed, never decoded here; see :mod:`robench.data.sources`)."""

from __future__ import annotations

import gzip
import io
import os
import re
from pathlib import Path

import numpy as np
import torch

from robench.data.base import IMAGE, Dataset, content_sha256
from robench.data.sources import ImageFiles
from robench.errors import RobenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _read_idx(path: Path) -> np.ndarray:
    import zlib

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise RobenchError(f"idx file {path} not found") from None
    except EOFError:  # gzip's "ended before the end-of-stream marker": not an interrupt (click maps EOFError to Abort)
        raise RobenchError(f"idx file {path} is truncated (the gzip stream ends early); download it again") from None
    except zlib.error as e:  # a corrupt deflate stream is zlib.error, which is not an OSError
        raise RobenchError(f"idx file {path} is corrupt ({e}); download it again") from None
    except OSError as e:
        raise RobenchError(f"idx file {path} is unreadable or not gzip ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise RobenchError(f"{path} is not an unsigned-byte idx file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise RobenchError(f"idx file {path} is truncated ({body.size} bytes for shape {dims})")
    return body.reshape(dims)


def is_idx_images(name: str) -> bool:
    return "idx3-ubyte" in Path(name).name


def load_idx(path: Path) -> Dataset:
    """MNIST-style ``*-images-idx3-ubyte[.gz]`` with its ``*-labels-idx1-ubyte[.gz]`` beside it."""
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    images, labels = _read_idx(path), _read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise RobenchError(f"{path} and {labels_path} do not hold N images and N labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    k = int(y.max()) + 1
    return Dataset(name=str(path), task=IMAGE, split=path.name.split("-")[0], labels=[str(i) for i in range(k)],
                   inputs=x, targets=y, ids=list(range(len(y))), sha256=content_sha256(x, y))


def natural_key(name: str) -> list:
    """timm's sort key (``timm.utils.misc.natural_key``): digit runs compare as numbers, so class
    folders ``0, 1, ..., 10`` (ImageNet-V2) and files ``img2, img10`` sort as people number them."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name.lower())]


def list_images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursively), as paths relative to it, in natural order."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, folder)
        out += [f if rel == "." else os.path.join(rel, f) for f in files
                if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")]
    return sorted(out, key=natural_key)


def class_folders(root: Path) -> list[str]:
    """The class sub-folders of ``root`` in timm's (natural) order."""
    if not root.is_dir():
        raise RobenchError(f"image folder {root} not found")
    return sorted((d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=natural_key)


def folder_dataset(root: Path, classes: list[str] | None = None, name: str | None = None,
                   split: str | None = None) -> Dataset:
    """``root/CLASS/**/*.jpg``: a lazy image dataset (nothing decoded; see :mod:`robench.data.sources`).

    Label names are the class folders in natural order (timm's ``ImageDataset`` order), or
    ``classes`` when given (folders not in it are refused; classes without a folder are fine).
    Examples are ordered by their relative path, as timm orders them; images may have any size,
    format and mode: each model's preprocessing resizes, crops and converts them.
    """
    found = class_folders(root)
    if not found:
        raise RobenchError(f"image folder {root} has no class sub-folders (expected {root}/CLASS/image.jpg)")
    labels = list(classes) if classes is not None else found
    index = {c: i for i, c in enumerate(labels)}
    unknown = [c for c in found if c not in index]
    if unknown:
        raise RobenchError(f"image folder {root}: class folder(s) {', '.join(unknown[:3])} are not among its "
                           f"{len(labels)} classes (e.g. {', '.join(labels[:3])})")
    files, targets = [], []
    for c in found:
        for rel in list_images(root / c):
            files.append(os.path.join(c, rel))
            targets.append(index[c])
    if not files:
        raise RobenchError(f"image folder {root} is empty: no {', '.join(IMAGE_SUFFIXES)} files under its class folders")
    order = sorted(range(len(files)), key=lambda i: natural_key(files[i]))
    return Dataset(name=name or str(root), task=IMAGE, split=split or root.name, labels=labels,
                   inputs=ImageFiles(str(root), tuple(files[i] for i in order)),
                   targets=torch.tensor([targets[i] for i in order], dtype=torch.long),
                   ids=list(range(len(files))), sha256="")


def load_image_folder(root: Path) -> Dataset:
    """A class-per-folder image tree; ImageNet-family trees get their label space (robench.data.imagenet)."""
    from robench.data.imagenet import with_label_space

    return with_label_space(folder_dataset(root))


IMAGE_PATH_COLUMNS = ("image", "image_path", "path", "file", "filename", "filepath")


def image_table_column(header: list[str], wanted: str | None) -> str | None:
    """The image-path column of a table header, or None when the table is not an image table."""
    names = [h.strip().lower() for h in header]
    if wanted:
        return wanted.lower() if wanted.lower() in names else None
    return next((c for c in IMAGE_PATH_COLUMNS if c in names), None)


def is_image_table(path: Path, columns: dict[str, str | None]) -> bool:
    """True when a CSV/TSV's header names a column of image paths (``--image-column``, or one of
    ``IMAGE_PATH_COLUMNS`` in a table without a text column): read from its first line only."""
    from robench.data.files import TEXT_COLUMNS

    import csv

    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            first = next(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ","), [])
    except OSError:
        return False  # the text-table loader reports a missing or unreadable file
    header = [h.strip().lower() for h in first]
    if columns.get("image"):
        return columns["image"].lower() in header
    text = [columns["text"].lower()] if columns.get("text") else list(TEXT_COLUMNS)
    return image_table_column(header, None) is not None and not any(c in header for c in text)


def load_image_table(path: Path, columns: dict[str, str | None]) -> Dataset:
    """A CSV/TSV of image paths (relative to the table's folder, or absolute) and labels.

    Labels as in text tables (:func:`robench.data.labels.infer_labels`: integers 0..K-1 are
    positions, anything else names, sorted). Nothing is opened here.
    """
    from robench.data.labels import infer_labels

    import csv

    from robench.fileio import read_text_file

    raw = read_text_file(path, "dataset file").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(raw), delimiter="\t" if path.suffix == ".tsv" else ","))
    if len(rows) < 2:
        raise RobenchError(f"dataset file {path} is empty (it needs a header row and at least one image)")
    header = [h.strip().lower() for h in rows[0]]
    image_col = header.index(image_table_column(header, columns.get("image")))
    label_name = (columns.get("label") or "label").lower()
    if label_name not in header:
        raise RobenchError(f"image table {path}: no {label_name!r} column among {header}; name it with --label-column")
    label_col = header.index(label_name)
    files, raw_labels = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise RobenchError(f"image table {path} line {line_no}: {len(row)} fields where the header has {len(header)}")
        if not row[label_col].strip():
            raise RobenchError(f"image table {path} line {line_no}: the label field is empty; every image needs one")
        files.append(row[image_col].strip())
        raw_labels.append(row[label_col].strip())
    y, labels = infer_labels(raw_labels, f"image table {path}")
    base = path.resolve().parent  # relative paths are relative to the table; a missing file is
    # reported (by Dataset.identity, one stat per sampled file) before any model work
    ds = Dataset(name=str(path), task=IMAGE, split=path.stem, labels=labels, inputs=ImageFiles(str(base), tuple(files)),
                 targets=y, ids=list(range(len(files))), sha256="")
    from robench.data.imagenet import with_label_space

    return with_label_space(ds)
