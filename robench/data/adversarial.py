"""Datasets saved by ``robench attack --save-adv``: written batch by batch, re-evaluated with ``--dataset PATH``.

The file is plain safetensors: ``images`` (float32 ``(N, C, H, W)`` in [0, 1], adversarial where
attacked, clean otherwise), ``labels``, ``ids``, ``clean_preds``, ``adv_preds`` and metadata
(model, threat, label names). :class:`StreamingImages` writes it without holding the images: the
header (every tensor's shape and offsets) is known up front, each batch of images is written at
its rows' offsets, and the file is renamed into place only when complete. Reading it back keeps
small sets in memory and reads large ones row by row (:class:`~robench.data.sources.TensorFile`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from robench.data.base import IMAGE, Dataset, content_sha256
from robench.errors import RobenchError

ADV_FORMAT = "robench-adversarial"
IN_MEMORY_BYTES = 1 << 30  # image tensors up to 1 GiB are read whole; larger ones lazily
SMALL = ("labels", "ids", "clean_preds", "adv_preds")  # int64 (N,) tensors after the images


class StreamingImages:
    """A ``--save-adv`` file being written: ``write(positions, images)`` in any order, then
    ``commit(small tensors)`` (or ``abort()``); nothing is left at ``path`` unless committed."""

    def __init__(self, path: Path, n: int, shape: tuple[int, ...], metadata: dict[str, str]) -> None:
        self.path, self.n, self.shape = Path(path), n, tuple(shape)
        self.row_bytes = 4 * int(torch.tensor(self.shape).prod())
        header: dict = {"__metadata__": metadata,
                        "images": {"dtype": "F32", "shape": [n, *self.shape], "data_offsets": [0, n * self.row_bytes]}}
        end = n * self.row_bytes
        for name in SMALL:
            header[name] = {"dtype": "I64", "shape": [n], "data_offsets": [end, end + 8 * n]}
            end += 8 * n
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # safetensors pads its header to 8 bytes
        self.offsets = {name: header[name]["data_offsets"][0] for name in ("images", *SMALL)}
        self.base = 8 + len(raw)
        self.positions: set[int] = set()
        self.committed = False
        self.tmp = None
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            self.file = os.fdopen(fd, "w+b")
            self.file.write(len(raw).to_bytes(8, "little") + raw)
            self.file.truncate(self.base + end)  # sparse: the image rows are filled as they come
        except OSError as e:
            if self.tmp is not None:
                Path(self.tmp).unlink(missing_ok=True)
            raise self._error(e) from None

    def _error(self, e: OSError) -> RobenchError:
        return RobenchError(f"--save-adv {self.path}: cannot write ({e.strerror}); free disk space or choose another path")

    def write(self, positions: list[int], images: torch.Tensor) -> None:
        """Images (``(B, *shape)``, any device) of the examples at ``positions``."""
        data = images.detach().to("cpu", torch.float32).contiguous()
        for j, p in enumerate(positions):
            self._at(self.offsets["images"] + p * self.row_bytes, data[j].numpy().tobytes())
            self.positions.add(p)

    def _at(self, offset: int, data: bytes) -> None:
        try:
            self.file.seek(self.base + offset)
            self.file.write(data)
        except OSError as e:
            raise self._error(e) from None

    def commit(self, small: dict[str, torch.Tensor]) -> None:
        """Write the label/id/prediction tensors, fsync and rename into place."""
        if len(self.positions) != self.n:
            raise RobenchError(f"--save-adv: {len(self.positions)} of {self.n} images written; the file is incomplete")
        for name in SMALL:
            if small[name].shape != (self.n,):
                raise ValueError(f"--save-adv: {name} has shape {tuple(small[name].shape)}, expected ({self.n},)")
            self._at(self.offsets[name], small[name].to(torch.int64).contiguous().numpy().tobytes())
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # what a plain open() would give, as fileio's atomic writes
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise self._error(e) from None
        self.committed = True

    def abort(self) -> None:
        """Remove the temporary file unless committed (a kill -9 leaves it: ``.NAME.*.tmp`` beside NAME)."""
        if not self.committed:
            self.file.close()
            Path(self.tmp).unlink(missing_ok=True)


def load_adversarial(path: Path) -> Dataset:
    """Load a ``.safetensors`` file written by ``--save-adv`` as an image dataset."""
    from safetensors import safe_open

    from robench.data.sources import TensorFile

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
            if meta.get("format") != ADV_FORMAT or not {"images", "labels", "ids"} <= keys:
                raise RobenchError(f"{path} is not a robench adversarial set (written by `robench attack --save-adv`)")
            shape = tuple(f.get_slice("images").get_shape())
            lazy = 4 * int(torch.tensor(shape).prod()) > IN_MEMORY_BYTES
            x = None if lazy else f.get_tensor("images").float()
            y, ids = f.get_tensor("labels").long(), f.get_tensor("ids").tolist()
    except FileNotFoundError:
        raise RobenchError(f"dataset file {path} not found") from None
    except RobenchError:
        raise
    except Exception as e:  # safetensors' own error type for malformed files
        raise RobenchError(f"dataset file {path} is corrupt or not safetensors ({str(e).splitlines()[0]})") from None
    common = dict(name=path.stem, task=IMAGE, split=meta.get("split", "test"), labels=json.loads(meta["labels"]),
                  targets=y, ids=ids)
    if x is not None:
        return Dataset(inputs=x, sha256=content_sha256(x, y), **common)
    st = path.stat()  # its identity by size and modification time: hashing 30 GB would be a second pass
    source = TensorFile(str(path), "images", tuple(range(shape[0])), f"{st.st_size}:{st.st_mtime_ns}", tuple(shape[1:]))
    return Dataset(inputs=source, sha256="", **common)
