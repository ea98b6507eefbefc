"""``timm:NAME``, ``timm:NAME=WEIGHTS``, ``timm:NAME=pretrained`` and ``timm:DIR`` as robench models.

``timm:X`` names a timm hub-layout folder (:mod:`robench.models.timm_folder`) when X is an existing
directory, else a timm model name (a registered one: ``robench_deit_*`` and ``robench_vit_*`` too).
WEIGHTS may be a timm train.py checkpoint (``*.pth.tar``: its ``state_dict``, or ``state_dict_ema``
with ``use_ema``).

The preprocessing contract comes from timm's own data config (``resolve_data_config(model=...,
use_test_size=True)`` as timm's validate.py: input size, mean, std, crop_pct, crop_mode,
interpolation), like timm's users expect; ``--mean/--std`` override the normalisation and
``--img-size/--crop-pct/--interpolation`` the geometry (robench.data.preprocess). Weights load from safetensors or
a weights-only torch file, with ``module.``/``model.`` prefixes stripped and every missing or
unexpected key reported. The classifier head is never re-initialised silently: a head whose size
differs from the dataset's label count is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robench.checkpoint.card import Card, ExternalArch, image_preprocessing
from robench.checkpoint.io import check_state_dict, clean_prefixes, read_state_dict
from robench.data.base import IMAGE
from robench.errors import RobenchError


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings -> typed kwargs (int, float, bool or string; never evaluated as code)."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise RobenchError(f"--model-arg {item!r}: expected key=value (e.g. img_size=32)")
        v = value.strip()
        if v.lower() in ("true", "false"):
            out[key.strip()] = v.lower() == "true"
            continue
        for cast in (int, float):
            try:
                out[key.strip()] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[key.strip()] = v
    return out


def import_timm():
    """timm, with robench's models registered, or a one-line error when it is not installed."""
    try:
        import timm

        import robench.models.timm_models  # noqa: F401  (robench_vit_* and robench_deit_* are timm models too)
    except ImportError as e:
        raise RobenchError(f"timm is not importable ({e}); install it: pip install timm") from None
    return timm


def load_timm(spec: str, labels: list[str] | None, model_args: dict[str, Any],
              mean: list[float] | None, std: list[float] | None, use_ema: bool = False):
    """Build the timm model of ``spec`` and its card; returns ``(net, card, weights_sha256)``."""
    timm = import_timm()
    target = spec[len("timm:"):]
    if target and Path(target).is_dir():
        from robench.models.timm_folder import load_timm_folder

        return load_timm_folder(Path(target), spec, labels, model_args, mean, std, use_ema)
    name, _, source = target.partition("=")
    if not name or not timm.is_model(name):
        if os.sep in name and not Path(name).exists():
            raise RobenchError(f"{spec}: no folder {name}; timm:DIR takes a timm hub-layout folder (config.json + model.safetensors)")
        raise RobenchError(f"unknown timm model {name!r}; list them with python -c \"import timm; print(timm.list_models())\"")
    if labels is None:
        raise RobenchError(f"{spec}: a timm model needs --dataset (its labels size the classifier head)")
    kwargs = {**model_args, "num_classes": len(labels)}
    pretrained = source == "pretrained"
    try:
        net = timm.create_model(name, pretrained=pretrained, **kwargs)
    except RobenchError:
        raise
    except Exception as e:  # bad keyword arguments; hub download failures when pretrained weights were asked for
        from robench.models.timm_models import NoPretrainedWeights

        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if isinstance(e, NoPretrainedWeights):
            raise RobenchError(f"{spec}: {e}") from None
        if isinstance(e, TypeError) or (isinstance(e, ValueError) and not pretrained):
            raise RobenchError(f"{spec}: timm rejected the model arguments {model_args} ({first})") from None
        if pretrained:
            raise RobenchError(f"{spec}: pretrained weights could not be loaded ({first}); "
                               "offline, download them elsewhere and pass timm:NAME=path/to/weights") from None
        raise
    digest = ""
    if source and not pretrained:
        state, digest = read_state_dict(Path(source), use_ema)
        state = clean_prefixes(state)
        check_state_dict(net, state, source)
        net.load_state_dict(state)
    elif use_ema:
        raise RobenchError(f"--use-ema: {spec} names no checkpoint; give one (timm:NAME=model_best.pth.tar)")
    net.eval()
    card = timm_card(net, spec, ExternalArch("timm", name, len(labels), dict(model_args)), labels, mean, std, digest)
    return net, card, digest


def timm_card(net, spec: str, arch: ExternalArch, labels: list[str], mean: list[float] | None,
              std: list[float] | None, digest: str, source: str = "timm data config") -> Card:
    """The card of a timm model: its preprocessing contract from timm's data config (``--mean/--std``
    override the normalisation), ``labels`` one per output."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=net, use_test_size=True)  # as timm's validate.py
    c, h, w = cfg["input_size"]
    m, s = list(mean or cfg["mean"]), list(std or cfg["std"])
    note = f"from {source}" if mean is None else "from --mean/--std"
    if len(m) != c or len(s) != c:
        if mean is not None or std is not None:
            raise RobenchError(f"--mean/--std need {c} value(s), one per input channel")
        m, s = [sum(m) / len(m)] * c, [sum(s) / len(s)] * c  # e.g. a 1-channel model: channel-average
        note += f" (averaged over channels for a {c}-channel input)"
    pre = image_preprocessing(c, h, [float(v) for v in m], [float(v) for v in s], crop_pct=float(cfg["crop_pct"]),
                              crop_mode=str(cfg.get("crop_mode") or "center"), interpolation=str(cfg["interpolation"]))
    pre["size"] = [int(h), int(w)]
    pre["geometry_source"] = source
    pre["note"] = note
    return Card(task=IMAGE, labels=list(labels), architecture=arch, preprocessing=pre, name=spec,
                weights_sha256=digest, params=sum(p.numel() for p in net.parameters()))
