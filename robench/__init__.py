"""robench: robustness benchmarking for Transformer classifiers (SA, BSA, GRC, BSA-GRC).

The library API mirrors the CLI: ``robench.load_model``, ``robench.evaluate``, ``robench.train``.
Heavy modules are imported lazily so that ``import robench`` and ``robench --help`` stay fast.

``robench.evaluate`` and ``robench.train`` are both a module (``from robench.evaluate import
EvaluateArgs``) and a function (``robench.evaluate(EvaluateArgs(...))``): the module is callable and
calling it calls the function of the same name. Importing a submodule rebinds the package
attribute to the module, so a lazily bound *function* would be shadowed after the first import;
a callable module is the same object whichever way it was reached.
"""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("robench.loading", "load_model"),
    "LoadedModel": ("robench.loading", "LoadedModel"),
    "evaluate": ("robench.evaluate", None),  # the callable module (see above)
    "EvaluateArgs": ("robench.evaluate", "EvaluateArgs"),
    "train": ("robench.train", None),
    "TrainArgs": ("robench.train", "TrainArgs"),
    "load_dataset": ("robench.data.registry", "load_dataset"),
    "RobenchError": ("robench.errors", "RobenchError"),
}


class FunctionModule(types.ModuleType):
    """A module that can be called: ``module(...)`` is ``module.<last part of its name>(...)``."""

    def __call__(self, *args, **kwargs):
        # looked up at call time, so a patched function (tests' monkeypatch) is the one called
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Turn the already imported module ``module_name`` into a :class:`FunctionModule`."""
    sys.modules[module_name].__class__ = FunctionModule


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'robench' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
