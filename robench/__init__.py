"""robench: robustness benchmarking for Transformer classifiers (SA, BSA, GRC, BSA-GRC).

The library API mirrors the CLI: ``robench.load_model``, ``robench.evaluate``, ``robench.attack``,
``robench.train``, each with its arguments dataclass (``robench.EvaluateArgs`` ...). Heavy modules
are imported lazily so that ``import robench`` and ``robench --help`` stay fast.
See ``docs/architecture.md`` for where each part lives. ``import robench`` also registers robench's
timm models (``robench_vit_*``, ``robench_deit_*``) as soon as timm is imported (:mod:`robench.timm_hook`).
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("robench.models.loading", "load_model"),
    "LoadedModel": ("robench.models.loading", "LoadedModel"),
    "evaluate": ("robench.engine.evaluate", "evaluate"),
    "EvaluateArgs": ("robench.engine.args", "EvaluateArgs"),
    "attack": ("robench.engine.attack", "attack"),
    "AttackArgs": ("robench.engine.args", "AttackArgs"),
    "train": ("robench.training.classifier", "train"),
    "TrainArgs": ("robench.training.classifier", "TrainArgs"),
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

from robench import timm_hook as _timm_hook  # noqa: E402  (torch-free; imports nothing until timm is)

_timm_hook.install()
