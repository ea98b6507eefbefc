"""Datasets saved by ``robench attack --save-adv``: re-evaluate them with ``--dataset PATH``."""

from __future__ import annotations

import json
from pathlib import Path

from robench.data.base import IMAGE, Dataset, content_sha256
from robench.errors import RobenchError

ADV_FORMAT = "robench-adversarial"


def load_adversarial(path: Path) -> Dataset:
    """Load a ``.safetensors`` file written by ``--save-adv`` as an image dataset."""
    from safetensors import safe_open
    from safetensors.torch import load

    try:
        raw = path.read_bytes()
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load(raw)
    except FileNotFoundError:
        raise RobenchError(f"dataset file {path} not found") from None
    except Exception as e:  # safetensors' own error type for malformed files
        raise RobenchError(f"dataset file {path} is corrupt or not safetensors ({str(e).splitlines()[0]})") from None
    if meta.get("format") != ADV_FORMAT or not {"images", "labels", "ids"} <= set(tensors):
        raise RobenchError(f"{path} is not a robench adversarial set (written by `robench attack --save-adv`)")
    x, y = tensors["images"].float(), tensors["labels"].long()
    return Dataset(
        name=path.stem, task=IMAGE, split=meta.get("split", "test"), labels=json.loads(meta["labels"]),
        inputs=x, targets=y, ids=tensors["ids"].tolist(), sha256=content_sha256(x, y),
    )
