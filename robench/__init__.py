"""robench: robustness benchmarking for Transformer classifiers (SA, BSA, GRC, BSA-GRC).

The library API mirrors the CLI: ``robench.load_model``, ``robench.evaluate``, ``robench.train``.
Heavy modules are imported lazily so that ``import robench`` and ``robench --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("robench.loading", "load_model"),
    "LoadedModel": ("robench.loading", "LoadedModel"),
    "evaluate": ("robench.evaluate", "evaluate"),
    "train": ("robench.train", "train"),
    "TrainArgs": ("robench.train", "TrainArgs"),
    "load_dataset": ("robench.data.registry", "load_dataset"),
    "RobenchError": ("robench.errors", "RobenchError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'robench' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
