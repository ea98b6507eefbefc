"""``--device auto|cpu|cuda[:i]`` -> a torch.device, with one-line errors."""

from __future__ import annotations

import re

import torch

from robench.errors import RobenchError


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer, for parameter-free modules); CPU if none."""
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; an unavailable CUDA device is an error."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not m:
        raise RobenchError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise RobenchError(f"device {spec!r} requested but CUDA is not available here; use --device cpu")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise RobenchError(f"device {spec!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)
