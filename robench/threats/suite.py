"""Threat suites: TOML files in the top-level ``attacks/`` folder (``--suite NAME|PATH``).

A suite lists threat specs per modality::

    description = "..."
    image = ["fgsm:eps=0.1", "pgd:eps=0.1,alpha=1/40,steps=10"]
    text = []
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from robench.errors import RobenchError
from robench.resources.paths import REPO_ROOT
from robench.threats.base import Threat
from robench.threats.registry import build_threat

MODALITIES = ("image", "text")


def suites_dir() -> Path:
    return REPO_ROOT / "attacks"


@dataclass
class Suite:
    name: str
    description: str
    threats: dict[str, list[Threat]]

    def for_modality(self, modality: str) -> list[Threat]:
        return self.threats.get(modality, [])


def list_suites() -> list[str]:
    d = suites_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_suite(name_or_path: str) -> Suite:
    """Load a suite by name (``attacks/NAME.toml``) or path; every spec is validated up front."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = suites_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        raise RobenchError(f"unknown suite {name_or_path!r}; available: {', '.join(list_suites()) or '(none)'} (or a .toml path)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RobenchError(f"suite {path} is not valid TOML ({e})") from None
    unknown = sorted(set(data) - {"description", *MODALITIES})
    if unknown:
        raise RobenchError(f"suite {path} has unknown keys {unknown}; use description, image, text")
    threats: dict[str, list[Threat]] = {}
    for modality in MODALITIES:
        specs = data.get(modality, [])
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            raise RobenchError(f"suite {path}: {modality!r} must be a list of threat spec strings")
        built = [build_threat(s) for s in specs]
        for t in built:
            if t.modality != modality:
                raise RobenchError(f"suite {path}: {t.name!r} is a {t.modality} threat listed under {modality!r}")
        threats[modality] = built
    return Suite(path.stem, str(data.get("description", "")), threats)
