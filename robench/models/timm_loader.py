"""``timm:NAME``, ``timm:NAME=WEIGHTS`` and ``timm:NAME=pretrained`` as robench models.

The preprocessing contract comes from timm's own data config (``resolve_data_config(model=...,
use_test_size=True)`` as timm's validate.py: input size, mean, std, crop_pct, crop_mode,
interpolation), like timm's users expect; ``--mean/--std`` override the normalisation and
``--img-size/--crop-pct/--interpolation`` the geometry (robench.data.preprocess). Weights load from safetensors or
a weights-only torch file, with ``module.``/``model.`` prefixes stripped and every missing or
unexpected key reported. The classifier head is never re-initialised silently: a head whose size
differs from the dataset's label count is an error.
"""

from __future__ import annotations

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


def load_timm(spec: str, labels: list[str] | None, model_args: dict[str, Any],
              mean: list[float] | None, std: list[float] | None):
    """Build the timm model of ``spec`` and its card; returns ``(net, card, weights_sha256)``."""
    try:
        import timm
        from timm.data import resolve_data_config

        import robench.models.timm_models  # noqa: F401  (robench_vit_* are timm models too)
    except ImportError as e:
        raise RobenchError(f"timm is not importable ({e}); install it: pip install timm") from None
    name, _, source = spec[len("timm:"):].partition("=")
    if not name or not timm.is_model(name):
        raise RobenchError(f"unknown timm model {name!r}; list them with python -c \"import timm; print(timm.list_models())\"")
    if labels is None:
        raise RobenchError(f"{spec}: a timm model needs --dataset (its labels size the classifier head)")
    kwargs = {**model_args, "num_classes": len(labels)}
    pretrained = source == "pretrained"
    try:
        net = timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        raise RobenchError(f"{spec}: timm rejected the model arguments {model_args} ({e})") from None
    except Exception as e:  # hub download failures and the like, when pretrained weights were asked for
        if pretrained:
            raise RobenchError(f"{spec}: pretrained weights could not be loaded ({str(e).splitlines()[0][:160]}); "
                               "offline, download them elsewhere and pass timm:NAME=path/to/weights") from None
        raise
    digest = ""
    if source and not pretrained:
        state, digest = read_state_dict(Path(source))
        state = clean_prefixes(state)
        check_state_dict(net, state, source)
        net.load_state_dict(state)
    net.eval()
    cfg = resolve_data_config({}, model=net, use_test_size=True)  # as timm's validate.py
    c, h, w = cfg["input_size"]
    m, s = list(mean or cfg["mean"]), list(std or cfg["std"])
    note = "from timm's data config" if mean is None else "from --mean/--std"
    if len(m) != c or len(s) != c:
        if mean is not None or std is not None:
            raise RobenchError(f"--mean/--std need {c} value(s), one per input channel")
        m, s = [sum(m) / len(m)] * c, [sum(s) / len(s)] * c  # e.g. a 1-channel model: channel-average
        note += f" (averaged over channels for a {c}-channel input)"
    pre = image_preprocessing(c, h, [float(v) for v in m], [float(v) for v in s], crop_pct=float(cfg["crop_pct"]),
                              crop_mode=str(cfg.get("crop_mode") or "center"), interpolation=str(cfg["interpolation"]))
    pre["size"] = [int(h), int(w)]
    pre["geometry_source"] = "timm data config"
    pre["note"] = note
    card = Card(task=IMAGE, labels=list(labels),
                architecture=ExternalArch("timm", name, len(labels), dict(model_args)), preprocessing=pre,
                name=spec, weights_sha256=digest, params=sum(p.numel() for p in net.parameters()))
    return net, card, digest
