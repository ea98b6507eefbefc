"""``timm:DIR``: a timm hub-layout folder, as ``timm.models.save_for_hf`` / ``push_to_hf_hub`` (and
``robench export``) write it, loaded offline.

    DIR/config.json          architecture, num_classes, pretrained_cfg, optional model_args,
                             label_names / label_descriptions
    DIR/model.safetensors    the weights (or pytorch_model.bin, read with weights_only=True)

timm parses the folder itself (``load_model_config_from_path``, what ``create_model("local-dir:DIR")``
uses), so the architecture, its arguments and the pretrained_cfg (input size, crop_pct,
interpolation, mean/std, label names) are read exactly as timm reads them; the model is built with
``create_model("local-dir:DIR")`` and random weights, then robench loads the weights strictly
(every missing or unexpected key reported, no head re-initialised). Labels: the folder's
``label_names`` when it has them, else the dataset's (as for ``timm:NAME``), else ``0..K-1``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robench.checkpoint.card import Card, ExternalArch
from robench.checkpoint.io import check_state_dict, clean_prefixes, read_state_dict
from robench.errors import RobenchError
from robench.models.timm_loader import import_timm, timm_card

CONFIG = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's names, in the order timm prefers them
LAYOUT = "a timm hub-layout folder (timm's save_for_hf / push_to_hf_hub, robench export) holds config.json and model.safetensors"


def read_folder_config(folder: Path, spec: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """``(pretrained_cfg, architecture, model_args)`` of ``folder`` as timm parses them."""
    from timm.models._hub import load_model_config_from_path  # what create_model("local-dir:...") calls

    path = folder / CONFIG
    if not path.is_file():
        raise RobenchError(f"{spec}: folder {folder} has no {CONFIG}; {LAYOUT}")
    try:
        return load_model_config_from_path(folder)
    except json.JSONDecodeError as e:
        raise RobenchError(f"{spec}: {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except KeyError as e:
        if e.args and e.args[0] == "architecture":
            raise RobenchError(f"{spec}: {path} has no 'architecture' (the timm model name, e.g. "
                               "\"robench_deit_tiny_sa_patch16_224\" or \"vit_tiny_patch16_224\"); add it") from None
        raise RobenchError(f"{spec}: {path} is not a timm model config (no {e.args[0]!r})") from None
    except (TypeError, AttributeError, ValueError) as e:
        raise RobenchError(f"{spec}: {path} is not a timm model config ({type(e).__name__}: {e})") from None


def folder_labels(names: Any, num_classes: int, spec: str) -> list[str] | None:
    """``label_names`` of a config (a list, or ``{class id: name}`` with gaps named by their id), checked."""
    if not names:
        return None
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except ValueError:
            raise RobenchError(f"{spec}: config.json's label_names keys must be class ids 0..{num_classes - 1}") from None
        if not all(0 <= k < num_classes for k in by_id):
            raise RobenchError(f"{spec}: config.json's label_names has ids outside 0..{num_classes - 1}")
        labels = [by_id.get(i, str(i)) for i in range(num_classes)]
    else:
        labels = [str(v) for v in names]
    if len(labels) != num_classes:
        raise RobenchError(f"{spec}: config.json lists {len(labels)} label_names for num_classes={num_classes}; "
                           "give one name per class")
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})[:3]
        raise RobenchError(f"{spec}: config.json's label_names name {', '.join(map(repr, twice))} more than once")
    return labels


def load_timm_folder(folder: Path, spec: str, labels: list[str] | None, model_args: dict[str, Any],
                     mean: list[float] | None, std: list[float] | None, use_ema: bool = False):
    """Build the model of a timm hub-layout ``folder`` and its card; returns ``(net, card, weights_sha256)``.

    ``labels`` (the dataset's, when there is one) must have one name per class of the folder's
    model; ``model_args`` (``--model-arg``) override the folder's ``model_args``.
    """
    timm = import_timm()
    pretrained_cfg, arch, saved_args = read_folder_config(folder, spec)
    if not timm.is_model(arch):
        raise RobenchError(f"{spec}: {folder / CONFIG} names architecture {arch!r}, which timm {timm.__version__} does not "
                           "know (robench adds robench_vit_* and robench_deit_*); install the timm version or package that defines it")
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise RobenchError(f"{spec}: folder {folder} has no model.safetensors (nor pytorch_model.bin); "
                           "copy the weights file beside config.json")
    try:
        net = timm.create_model(f"local-dir:{folder}", pretrained=False, **model_args)
    except RobenchError:
        raise
    except (TypeError, ValueError) as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise RobenchError(f"{spec}: timm could not build {arch} from config.json's model_args {saved_args}"
                           f"{f' and --model-arg {model_args}' if model_args else ''} ({first})") from None
    n = int(net.num_classes)
    if labels is not None and len(labels) != n:
        raise RobenchError(f"{spec}: the model has {n} classes (num_classes in {CONFIG}) but the dataset has {len(labels)} "
                           f"labels; evaluate it on a dataset with its {n} classes")
    names = folder_labels(pretrained_cfg.get("label_names"), n, spec)
    state, digest = read_state_dict(weights, use_ema)
    state = clean_prefixes(state)
    check_state_dict(net, state, str(weights))
    net.load_state_dict(state)
    net.eval()
    card_labels = names or (list(labels) if labels is not None else [str(i) for i in range(n)])
    arch_card = ExternalArch("timm", arch, n, {**saved_args, **model_args})
    card: Card = timm_card(net, spec, arch_card, card_labels, mean, std, digest, source=f"timm data config ({CONFIG})")
    return net, card, digest
