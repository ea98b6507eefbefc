"""Lazy image sources: images that stay on disk until a batch needs them.

A source is an indexable list of encoded images (files, rows of a memory-mapped Arrow table, or
slices of a safetensors tensor). Nothing is decoded when a source is built or subset: listing a
50,000-file tree costs its directory walk, sampling costs nothing, and DataLoader worker processes
(:mod:`robench.data.loader`) decode only the examples a batch asks for. Sources are picklable (they
hold paths and row numbers, never pixels), so each worker gets its own cheap copy.

``identity()`` is the data's part of a run's identity (``dataset_sha256`` in every row): for files
it hashes each used file's relative path, size and modification time (one ``stat`` per sampled
file, no read), so rewriting any used file changes it; for Arrow tables it is ``datasets``'
fingerprint plus the row numbers; for a large safetensors file its size and modification time
plus the row numbers.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from robench.errors import RobenchError


class UnreadableImage(Exception):
    """Raised (and caught) when one source item cannot be read or decoded."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def decode(data: bytes, mode: str, where: str):
    """PIL image of ``data`` converted to ``mode`` ("RGB" or "L"), fully decoded.

    ``convert`` forces the decode, so a truncated or corrupt file fails here (as
    ``timm.data.ImageDataset`` loads images: ``Image.open(f).convert(mode)``), not later.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert(mode)
    except Exception as e:  # OSError and UnidentifiedImageError, but PIL's plugins raise many types on corrupt files
        raise UnreadableImage(where, describe(e)) from None


def describe(e: BaseException) -> str:
    """``Type: first line`` of an exception, for one-line messages."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'cannot decode'}"


class ImageSource:
    """Base class: ``len``, ``subset``, ``load(i, mode)``, ``where(i)``, ``identity()``.

    ``load`` returns a PIL image (files, Arrow rows) that the model's preprocessing still has to
    resize and crop, or a float tensor ``(C, H, W)`` in [0, 1] already at its final size
    (``presized`` sources: ``--save-adv`` files).
    """

    presized = False

    def __len__(self) -> int:
        raise NotImplementedError

    def subset(self, positions: Sequence[int]) -> "ImageSource":
        raise NotImplementedError

    def load(self, i: int, mode: str) -> Any:
        raise NotImplementedError

    def where(self, i: int) -> str:
        """A human name for item ``i`` (its file path), for error messages and skip lists."""
        raise NotImplementedError

    def identity(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class ImageFiles(ImageSource):
    """Image files under ``root`` (``paths`` relative to it, in dataset order)."""

    root: str
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, positions: Sequence[int]) -> "ImageFiles":
        return replace(self, paths=tuple(self.paths[i] for i in positions))

    def where(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def load(self, i: int, mode: str):
        path = self.where(i)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UnreadableImage(path, e.strerror or type(e).__name__) from None
        return decode(data, mode, path)

    def identity(self) -> str:
        h = hashlib.sha256(b"robench-image-files-v1\0")
        for rel in self.paths:
            try:
                st = os.stat(os.path.join(self.root, rel))
            except OSError as e:
                raise RobenchError(f"image file {os.path.join(self.root, rel)} cannot be read ({e.strerror}); "
                                   "restore it, or remove it from the dataset") from None
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class ArrowImages(ImageSource):
    """The ``column`` of a memory-mapped Hugging Face ``datasets.Dataset`` (an ``Image`` feature).

    The table is read with decoding turned off (``Image(decode=False)``): a row is its encoded
    bytes (or a path), decoded here like a file, so only the rows a batch needs are ever decoded
    and the Arrow data stays memory-mapped (pickling a ``datasets.Dataset`` carries file paths).
    """

    table: Any  # datasets.Dataset with `column` cast to Image(decode=False)
    column: str
    rows: tuple[int, ...]
    name: str = ""
    _fingerprint: str = field(default="", compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, positions: Sequence[int]) -> "ArrowImages":
        return replace(self, rows=tuple(self.rows[i] for i in positions))

    def where(self, i: int) -> str:
        return f"{self.name} row {self.rows[i]}"

    def load(self, i: int, mode: str):
        cell = self.table[int(self.rows[i])][self.column]
        where = self.where(i)
        if not isinstance(cell, dict):
            raise UnreadableImage(where, f"expected an Image feature, got {type(cell).__name__}")
        data = cell.get("bytes")
        if data is None and cell.get("path"):
            try:
                data = Path(cell["path"]).read_bytes()
            except OSError as e:
                raise UnreadableImage(f"{where} ({cell['path']})", e.strerror or type(e).__name__) from None
        if data is None:
            raise UnreadableImage(where, "the row holds no image")
        return decode(data, mode, where)

    def identity(self) -> str:
        h = hashlib.sha256(b"robench-arrow-images-v1\0")
        h.update(f"{self._fingerprint}\0{self.column}\0".encode())
        h.update(",".join(map(str, self.rows)).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class TensorFile(ImageSource):
    """Rows of a float image tensor stored in a safetensors file, read by slice (``--save-adv`` sets)."""

    path: str
    key: str
    rows: tuple[int, ...]
    digest: str
    shape: tuple[int, ...]  # (C, H, W) of one item
    presized = True

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, positions: Sequence[int]) -> "TensorFile":
        return replace(self, rows=tuple(self.rows[i] for i in positions))

    def where(self, i: int) -> str:
        return f"{self.path} image {self.rows[i]}"

    def load(self, i: int, mode: str):
        from safetensors import safe_open

        with safe_open(self.path, "pt") as f:
            return f.get_slice(self.key)[int(self.rows[i])].float()

    def identity(self) -> str:
        h = hashlib.sha256(f"robench-tensor-file-v1\0{self.digest}\0{self.key}\0".encode())
        h.update(",".join(map(str, self.rows)).encode())
        return h.hexdigest()
