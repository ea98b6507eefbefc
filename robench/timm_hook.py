"""Makes ``import robench`` register robench's timm models without importing timm.

timm has no plugin discovery, and importing it (with torch) costs seconds that ``robench --help``
must not pay. So ``import robench`` installs a finder that wraps timm's loader: the moment timm
finishes importing (by anyone, in any order), :mod:`robench.models.timm_models` registers
``robench_vit_*`` and ``robench_deit_*``; with timm already imported it registers at once. Torch-free.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from types import ModuleType


def register() -> None:
    """Register robench's models with timm's registry (imports timm and torch)."""
    try:
        import robench.models.timm_models  # noqa: F401  (its @register_model calls fill timm's registry)
    except Exception as e:  # a broken robench must not break `import timm` for everyone else
        warnings.warn(f"robench could not register its timm models: {type(e).__name__}: {e}", stacklevel=2)


class _RegisteringLoader(importlib.abc.Loader):
    """timm's own loader, plus :func:`register` once the package has executed."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):  # noqa: ANN001, ANN201  (importlib's signature)
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        register()

    def __getattr__(self, name: str):  # resource readers and the like stay timm's loader's
        return getattr(self._loader, name)


class _TimmFinder(importlib.abc.MetaPathFinder):
    """Finds ``timm`` the way the rest of ``sys.meta_path`` would, with its loader wrapped."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201
        if fullname != "timm":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _RegisteringLoader):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Register now if timm is imported, else when it is (idempotent)."""
    if "timm" in sys.modules:
        register()
    elif not any(isinstance(f, _TimmFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TimmFinder())
