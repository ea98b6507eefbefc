"""``--device auto|cpu|cuda[:i]`` -> a torch.device, ``--threads``, ``--amp``; one-line errors."""

from __future__ import annotations

import os
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


AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def resolve_amp(spec: str, device: torch.device) -> torch.dtype | None:
    """``--amp``: the autocast dtype of attack forward passes, or None for fp32.

    ``auto`` is bf16 on CUDA devices that support it and fp32 elsewhere; ``bf16`` and ``fp16`` are
    honoured on any device (``torch.autocast`` runs on CPU too, which is how the mechanism is tested).
    bf16 keeps fp32's exponent range; under fp16 the monitor rescales each example's loss gradient
    so that it does not underflow (:mod:`robench.threats.monitor`).
    """
    spec = spec.strip().lower()
    if spec == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if spec == "off":
        return None
    if spec == "bf16":
        return torch.bfloat16
    if spec == "fp16":
        return torch.float16
    raise RobenchError(f"unknown --amp {spec!r}; use {', '.join(AMP_CHOICES)}")


def is_out_of_memory(e: BaseException) -> bool:
    """A CUDA out-of-memory error, or a CPU allocation failure (whose message says so)."""
    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def amp_name(spec: str, device: torch.device) -> str:
    """What ``--amp spec`` means on ``device``: ``off``, ``bf16`` or ``fp16`` (for run configs)."""
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[resolve_amp(spec, device)]


THREADS_ENV = "ROBENCH_THREADS"
def resolve_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads from ``--threads``, else ``$ROBENCH_THREADS``; otherwise leave
    torch's own count (one per core, or ``$OMP_NUM_THREADS``). Returns the count (recorded in the
    run header and config)."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if not raw:
            return torch.get_num_threads()
        try:
            threads = int(raw)
        except ValueError:
            raise RobenchError(f"${THREADS_ENV} must be a whole number of threads >= 1, got {raw!r}") from None
        if threads < 1:
            raise RobenchError(f"${THREADS_ENV} must be >= 1, got {threads}")
    if threads < 1:
        raise RobenchError(f"--threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
