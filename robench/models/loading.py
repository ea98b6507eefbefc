"""Resolve a MODEL argument (zoo name or checkpoint path) into a ready-to-run model.

Every model robench evaluates is a :class:`LoadedModel`: a module that takes *raw* inputs (images
in [0, 1], or token ids from its tokenizer) plus the card that describes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from robench.checkpoint.card import Card
from robench.checkpoint.io import PICKLE_SUFFIXES, SAFE_SUFFIX, load_checkpoint
from robench.data.base import IMAGE, LM
from robench.data.tokenizer import WordTokenizer
from robench.device import module_device
from robench.errors import RobenchError
from robench.resources.paths import REPO_ROOT
from robench.models.wrappers import ImageClassifier, TextClassifier


@dataclass
class LoadedModel:
    """A model ready for evaluation: ``module(raw inputs) -> logits``."""

    name: str
    module: nn.Module
    card: Card
    sha256: str
    path: Path | None = None
    label_names: list[str] | None = None  # the classes it is evaluated on, when a subset of the card's (ImageNet-A/R)

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def labels(self) -> list[str]:
        return self.card.labels if self.label_names is None else self.label_names

    @property
    def device(self) -> torch.device:
        return module_device(self.module)


def zoo_dir() -> Path:
    """The model zoo: ``$ROBENCH_ZOO`` or the repository's top-level ``models/`` folder."""
    env = os.environ.get("ROBENCH_ZOO")
    return Path(env) if env else REPO_ROOT / "models"


def list_zoo() -> list[str]:
    """Names of the checkpoints in the zoo (those with a card beside their weights)."""
    d = zoo_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob(f"*{SAFE_SUFFIX}") if p.with_suffix(".json").is_file())


def wrap(net: nn.Module, card: Card) -> nn.Module:
    """Put the card's preprocessing contract in front of ``net``."""
    if card.task == IMAGE:
        return ImageClassifier.from_contract(net, card.preprocessing)
    if card.task == LM:
        from robench.lm.corpus import LMTokenizer
        from robench.models.lm import LanguageModel

        return LanguageModel(net, LMTokenizer.from_contract(card.preprocessing))
    return TextClassifier(net, WordTokenizer.from_contract(card.preprocessing))


def resolve_path(spec: str) -> Path:
    """Map a MODEL argument to a weights file; a clear error lists what would have been accepted."""
    path = Path(spec)
    if path.suffix in (SAFE_SUFFIX, *PICKLE_SUFFIXES) or os.sep in spec:
        if not path.exists():
            raise RobenchError(f"checkpoint {path} not found")
        return path
    zoo_file = zoo_dir() / f"{spec}{SAFE_SUFFIX}"
    if zoo_file.is_file():
        return zoo_file
    if path.with_suffix(SAFE_SUFFIX).is_file():
        return path.with_suffix(SAFE_SUFFIX)
    names = list_zoo()
    raise RobenchError(
        f"unknown model {spec!r}: not a zoo name nor a checkpoint path; zoo: {', '.join(names) or '(empty)'}"
    )


def arch_card(arch: str) -> Card:
    """The card named by ``--arch``: a card JSON path or a zoo name (its architecture and contract)."""
    path = Path(arch) if arch.endswith(".json") else zoo_dir() / f"{arch}.json"
    if not path.is_file():
        raise RobenchError(f"--arch {arch!r}: no card at {path}; give a robench card (.json) or a zoo name ({', '.join(list_zoo())})")
    card = Card.read(path)
    card.name, card.weights_sha256, card.evaluation = "", "", {}  # those describe the zoo weights, not these
    return card


def load_model(
    spec: str | Path,
    device: str | torch.device = "cpu",
    arch: str | None = None,
    labels: list[str] | None = None,
    model_args: dict | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    use_ema: bool = False,
) -> LoadedModel:
    """Load a zoo name, a checkpoint path, ``timm:NAME[=WEIGHTS|=pretrained]`` or ``timm:DIR``, wrap
    it with its preprocessing and move it to ``device`` (eval mode; the module takes raw inputs).

    ``arch`` gives the card for a weights file without one (a plain state dict); ``labels``,
    ``model_args``, ``mean`` and ``std`` are for timm models (see :mod:`robench.models.timm_loader`);
    ``use_ema`` takes a training checkpoint's ``state_dict_ema`` (timm train.py ``--model-ema``).
    """
    spec = str(spec)
    if spec.startswith("timm:"):
        from robench.models.timm_loader import load_timm

        net, card, digest = load_timm(spec, labels, model_args or {}, mean, std, use_ema)
        module = wrap(net, card).to(device).eval()
        return LoadedModel(name=spec, module=module, card=card, sha256=digest, path=None)
    if model_args or mean or std:
        raise RobenchError(f"--model-arg/--mean/--std apply to timm: models only; {spec} carries its own contract")
    if spec.startswith("hf:"):
        from robench.models.hf_loader import load_hf

        module, card, digest = load_hf(spec)
        return LoadedModel(name=spec, module=module.to(device).eval(), card=card, sha256=digest, path=None)
    path = resolve_path(spec)
    net, card, digest = load_checkpoint(path, arch_card(arch) if arch else None, use_ema)
    module = wrap(net, card).to(device).eval()
    return LoadedModel(name=card.name or path.stem, module=module, card=card, sha256=digest, path=path)
