"""``robench export``: a robench image classifier as a timm hub-layout folder.

    DIR/config.json          architecture robench_vit_<variant>, num_classes, model_args (the
                             ArchConfig fields), pretrained_cfg (the card's preprocessing contract:
                             input size, mean/std, crop_pct, crop_mode, interpolation), label_names,
                             and the robench card under "robench" (provenance; timm ignores it)
    DIR/model.safetensors    the weights
    DIR/README.md            --to hf only: the model card push_to_hub would add (timm's generate_readme)

Written by timm's own ``save_for_hf`` from the model ``timm.create_model`` builds with the card's
arguments and the checkpoint's weights, so timm reads it back as ``local-dir:DIR`` (or ``hf-hub:ID``
once uploaded) after ``import robench``, and robench as ``timm:DIR``. The folder appears whole or not
at all: it is written in a temporary folder beside DIR, then renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench.checkpoint.card import Card
from robench.data.base import IMAGE
from robench.engine.args import ExportArgs
from robench.errors import RobenchError
from robench.fileio import sha256_file
from robench.models.config import BASELINE_VARIANTS, ArchConfig, option_fields

# the ArchConfig fields a ViT's timm entry point takes (family and variant are in its name)
VIT_ARGS = ("num_classes", "embed_dim", "depth", "num_heads", "mlp_ratio", "grc_init", "img_size", "patch_size", "in_chans")


@dataclass
class ExportResult:
    """What ``robench export`` wrote."""

    path: Path
    architecture: str
    files: list[str]
    sha256: str  # of model.safetensors


def timm_architecture(cfg: ArchConfig) -> tuple[str, dict[str, Any]]:
    """The timm entry point and keyword arguments that rebuild a robench ViT (design options too, where
    they differ from their defaults: an export of a default model is unchanged by their existence)."""
    args = {k: getattr(cfg, k) for k in VIT_ARGS}
    args.update({f.name: getattr(cfg, f.name) for f in option_fields()
                 if f.name not in args and getattr(cfg, f.name) != f.default})
    return f"robench_vit_{cfg.variant.replace('-', '_')}", args


def data_config(pre: dict[str, Any]) -> dict[str, Any]:
    """timm's data config of a card's image contract (a card without crop/interpolation means crop_pct
    1, centre crop, bilinear: images already at the model's size pass unchanged)."""
    h, w = (int(v) for v in pre["size"])
    return {"input_size": (int(pre["channels"]), h, w), "mean": tuple(pre["mean"]), "std": tuple(pre["std"]),
            "crop_pct": float(pre.get("crop_pct", 1.0)), "crop_mode": str(pre.get("crop_mode", "center")),
            "interpolation": str(pre.get("interpolation", "bilinear"))}


def _exportable(card: Card, name: str) -> ArchConfig:
    arch = card.architecture
    if card.task != IMAGE or not isinstance(arch, ArchConfig) or arch.family != "vit":
        what = arch.family if isinstance(arch, ArchConfig) else f"{arch.family} ({arch.name})"
        raise RobenchError(f"{name} is a {card.task} model of family {what}; robench export writes robench image ViTs "
                           "(timm has no architecture to carry robench's text classifiers or language models)")
    if arch.variant in BASELINE_VARIANTS:
        raise RobenchError(f"{name} is a {arch.variant} ViT; robench export writes the timm-registered variants "
                           "(sa, bsa, grc, bsa-grc), not the ALiBi/RoPE baselines")
    return arch


def _check_target(out: Path, force: bool) -> None:
    if not out.parent.is_dir():
        raise RobenchError(f"cannot write {out}: directory {out.parent} does not exist; create it first")
    if out.exists() and not out.is_dir():
        raise RobenchError(f"cannot write {out}: it is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise RobenchError(f"{out} exists and is not empty; choose another folder or pass --force to replace it")


def _model_card(card: Card, arch: str, cfg: ArchConfig) -> dict[str, Any]:
    """timm's ``generate_readme`` input: what the model is, where it came from, how to load it."""
    details: dict[str, Any] = {
        "Model Type": "Image classification",
        "Architecture": f"{arch}: robench ViT, variant {cfg.variant} ({cfg.attention} attention, {cfg.residual} residual)",
        "Params": f"{card.params:,}",
        "Image size": f"{cfg.img_size} x {cfg.img_size}, {cfg.in_chans} channel(s)",
        "Classes": f"{len(card.labels)}",
    }
    if card.training.get("dataset"):
        details["Dataset"] = str(card.training["dataset"])
    ev = card.evaluation
    if ev.get("clean_accuracy") is not None:
        details["Clean accuracy"] = f"{100 * ev['clean_accuracy']:.2f}% on {ev.get('dataset', '?')} {ev.get('split', '')} (n={ev.get('n')})"
    usage = ("```python\nimport robench, timm  # import robench registers robench_vit_* with timm\n"
             "model = timm.create_model(\"hf-hub:OWNER/REPO\", pretrained=True).eval()\n```\n"
             "Offline: `timm.create_model(\"local-dir:DIR\", pretrained=True)`, or `robench evaluate timm:DIR --dataset ...`.")
    return {"tags": ["image-classification", "timm", "robench"], "license": "other", "license_name": "unspecified",
            "description": f"{card.name or arch}, exported by `robench export` from the robench checkpoint with weights "
                           f"sha256 {card.weights_sha256} (its card is config.json's \"robench\" entry). "
                           "Set the license in this front matter before publishing.",
            "details": details, "usage": usage}


def _replace_dir(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; a non-empty ``out`` (``--force``) is moved aside first, then removed."""
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)  # onto an absent or empty folder: atomic
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_checkpoint(args: ExportArgs) -> ExportResult:
    """Write ``args.checkpoint`` as a timm hub-layout folder at ``args.out`` (see the module doc)."""
    from robench.checkpoint.io import load_checkpoint
    from robench.models.loading import arch_card, resolve_path
    from robench.models.timm_loader import import_timm

    out = Path(args.out)
    path = resolve_path(args.checkpoint)
    net, card, _ = load_checkpoint(path, arch_card(args.arch) if args.arch else None)
    cfg = _exportable(card, card.name or path.stem)
    _check_target(out, args.force)
    timm = import_timm()
    from timm.models import save_for_hf
    from timm.models._hub import generate_readme

    arch, model_args = timm_architecture(cfg)
    model = timm.create_model(arch, **model_args)
    model.load_state_dict(net.state_dict())  # strict: the timm entry point builds the very same module
    model.eval()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the folder gets the permissions mkdir would give
        card_dict = card.to_dict()
        save_for_hf(model, str(tmp), model_config={"label_names": list(card.labels), "robench": {"card": card_dict}},
                    model_args=model_args, safe_serialization=True, data_config=data_config(card.preprocessing))
        if args.to == "hf":
            text = generate_readme(_model_card(card, arch, cfg), card.name or out.name)
            (tmp / "README.md").write_text(text, encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        for name in files:  # safetensors writes 0600; every file gets what a plain open() would give
            os.chmod(tmp / name, 0o666 & ~umask)
        digest = sha256_file(tmp / "model.safetensors")
        _replace_dir(tmp, out)
    except OSError as e:
        raise RobenchError(f"cannot write {out}: {e.strerror}; free disk space or choose another path") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(path=out, architecture=arch, files=files, sha256=digest)
