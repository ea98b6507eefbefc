"""Where a checkpoint's datasets are, from any working directory.

A card names its training and evaluation data as typed (``"dataset"``: a registered name such as
``digits``, or a path such as ``../data/dev.tsv`` or ``FILE[8000:]``). For a path, ``robench train``
also records ``dataset_path`` (absolute) and ``dataset_card_path`` (relative to the card's folder):
the absolute one survives moving the checkpoint alone, the card-relative one moving a folder that
holds checkpoints and data together. Cards without these fields (the zoo's, older ones) keep
their meaning: the name as given.
"""

from __future__ import annotations

import os
from pathlib import Path

from robench.data.registry import parse_slice
from robench.errors import RobenchError

PATH_FIELDS = ("dataset_path", "dataset_card_path")


def _split_slice(name: str) -> tuple[str, str]:
    """``FILE[a:b]`` -> ``("FILE", "[a:b]")``; other names -> ``(name, "")``."""
    sliced = parse_slice(name)
    return (sliced[0], name[len(sliced[0]):]) if sliced else (name, "")


def locate(name: str, card_path: Path) -> dict[str, str]:
    """The card fields that find the source ``name`` again: ``{}`` unless ``name`` is an existing
    path (registered names and ``hf:`` hub names need no location)."""
    base, suffix = _split_slice(name)
    if base.startswith("hf:") or not Path(base).exists():
        return {}
    absolute = os.path.abspath(base)
    relative = os.path.relpath(absolute, os.path.abspath(card_path.parent))
    return {"dataset_path": Path(absolute).as_posix() + suffix, "dataset_card_path": Path(relative).as_posix() + suffix}


def resolve(section: dict, card_path: Path | None) -> str | None:
    """The loadable source of a card section (``training`` or ``evaluation``): its absolute path
    if that exists, else its card-relative path, else (older cards) the name as given."""
    name = section.get("dataset")
    if not name or not any(section.get(f) for f in PATH_FIELDS):
        return name
    tried = []
    for field in PATH_FIELDS:
        value = section.get(field)
        if not value:
            continue
        base, suffix = _split_slice(str(value))
        if field == "dataset_card_path":
            if card_path is None:
                continue
            base = os.path.normpath(os.path.join(card_path.parent, base))
        if Path(base).exists():
            return base + suffix
        tried.append(base)
    raise RobenchError(f"the card names dataset {name!r}, which is not here (looked for {' and '.join(tried)}); "
                       "pass --dataset PATH, or put the data back where the card says")


def default_dataset(card, card_path: Path | None) -> tuple[str, str] | None:
    """``(name, source)`` of the data a model is evaluated on by default: the card's evaluation
    dataset, else its training dataset; ``None`` when the card names neither. ``name`` is what the
    result rows call it (as recorded at training), ``source`` where it is read from."""
    for section in (card.evaluation, card.training):
        if section.get("dataset"):
            return section["dataset"], resolve(section, card_path)
    return None


def card_columns(card, columns: dict[str, str | None]) -> dict[str, str | None]:
    """The table columns for a model's own data: those given, else the ones its card recorded at
    training (``--text-column``/``--label-column``), so ``robench evaluate CKPT`` needs no flags.
    A ``--labels`` file is not needed again: the card holds the label names, and data labels map
    onto them by name (integers by position, in the file's order, which is the card's)."""
    out = dict(columns)
    for key in ("text", "label"):
        out[key] = out.get(key) or card.training.get(f"{key}_column")
    return out
