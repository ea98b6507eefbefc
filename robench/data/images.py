"""Image datasets on disk: MNIST-style idx files and class-per-folder image trees."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from robench.data.base import IMAGE, Dataset, content_sha256
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


def load_image_folder(root: Path) -> Dataset:
    """``root/CLASS/*.png``: label names are the sorted sub-folder names; all images one size."""
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise RobenchError(f"image folder {root} has no class sub-folders (expected {root}/CLASS/image.png)")
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise RobenchError(f"image folder {root} is empty: no {', '.join(IMAGE_SUFFIXES)} files under its class folders")
    images = [Image.open(f) for f, _ in files]
    mode = "L" if all(im.mode in ("L", "1", "I;16", "I") for im in images) else "RGB"
    arrays = [np.asarray(im.convert(mode), dtype=np.float32) / 255.0 for im in images]
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        raise RobenchError(f"image folder {root} mixes image sizes {sizes[:4]}; resize them to one size first")
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if mode == "L" else x.permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([c for _, c in files], dtype=torch.long)
    return Dataset(name=str(root), task=IMAGE, split=root.name, labels=classes, inputs=x, targets=y,
                   ids=list(range(len(y))), sha256=content_sha256(x, y))
