"""Save and load robench checkpoints safely.

Weights are safetensors by default. Pickle-based files (``.pt``, ``.pth``, ``.bin``) are read only
through ``torch.load(weights_only=True)``, which refuses any object that would run code; robench
never falls back to full unpickling. timm train.py checkpoints (``*.pth.tar``: ``state_dict``,
``state_dict_ema``, the optimizer and an ``argparse.Namespace`` under ``args``) load the same way with
``argparse.Namespace`` allowlisted, as timm's own loader does: a Namespace holds plain data.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import torch
from torch import nn

from robench.checkpoint.card import Card
from robench.errors import RobenchError
from robench.fileio import atomic_write_bytes, atomic_write_text, sha256_bytes
from robench.models.config import ArchConfig
from robench.models.registry import build_model

SAFE_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin")
TIMM_TRAIN_SUFFIX = ".pth.tar"  # timm train.py's checkpoint-N / model_best / last files


def is_pickle_path(path: Path) -> bool:
    """A torch pickle by name: ``.pt``, ``.pth``, ``.bin`` or timm train.py's ``.pth.tar``."""
    return path.suffix in PICKLE_SUFFIXES or path.name.endswith(TIMM_TRAIN_SUFFIX)


def card_path_for(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_checkpoint(net: nn.Module, card: Card, path: Path | str) -> str:
    """Write ``path`` (``.safetensors``) and its card atomically; returns the weights' sha256.

    The card's ``params`` and ``weights_sha256`` are filled in here.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != SAFE_SUFFIX:
        path = path.with_name(path.name + SAFE_SUFFIX)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    # No per-file metadata (e.g. the name): identical weights must give an identical sha256.
    data = save(state, metadata={"format": "pt"})
    digest = sha256_bytes(data)
    card.params = sum(p.numel() for p in net.parameters())
    card.weights_sha256 = digest
    card.name = card.name or path.stem
    atomic_write_bytes(path, data)
    atomic_write_text(card_path_for(path), card.to_json())
    return digest


def _first_line(e: Exception) -> str:
    """The first line of an exception's message, or its type when the message is empty (an empty file)."""
    lines = str(e).strip().splitlines()
    return lines[0][:160] if lines else type(e).__name__


def _no_ema(path: Path) -> RobenchError:
    return RobenchError(f"--use-ema: checkpoint {path} holds no state_dict_ema (timm train.py writes one when "
                        "trained with --model-ema); drop --use-ema to evaluate its weights")


def _pick_weights(obj: object, path: Path, use_ema: bool) -> object:
    """The state dict inside a training checkpoint: ``state_dict``, or ``state_dict_ema`` when asked."""
    if use_ema:
        if isinstance(obj, dict) and isinstance(obj.get("state_dict_ema"), dict):
            return obj["state_dict_ema"]
        raise _no_ema(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    return obj


def read_state_dict(path: Path, use_ema: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state dict and the file's sha256 without executing any pickled code.

    A training checkpoint (a dict with ``state_dict``, as timm train.py and Lightning write) gives its
    ``state_dict``; ``use_ema`` takes its ``state_dict_ema`` instead (an error when there is none).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RobenchError(f"checkpoint {path} not found") from None
    except IsADirectoryError:
        raise RobenchError(f"checkpoint {path} is a directory; give the .safetensors file") from None
    digest = sha256_bytes(raw)
    if not raw:
        raise RobenchError(f"checkpoint {path} is an empty file (0 bytes); re-create or re-download it")
    if path.suffix == SAFE_SUFFIX:
        from safetensors.torch import load

        if use_ema:  # a safetensors file is one state dict: no EMA copy beside it
            raise _no_ema(path)

        try:
            state = load(raw)
        except Exception as e:  # safetensors raises its own error type for any malformed file
            raise RobenchError(
                f"checkpoint {path} is corrupt or truncated ({_first_line(e)}); re-create or re-download it"
            ) from None
        return state, digest
    if is_pickle_path(path):
        import io

        try:
            with torch.serialization.safe_globals([argparse.Namespace]):  # timm train.py's `args`
                obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise RobenchError(
                f"refusing to load {path}: it needs arbitrary unpickling, which can run code ({_first_line(e)}); "
                "convert it to a plain state dict saved with safetensors"
            ) from None
        except (RuntimeError, EOFError, ValueError) as e:
            raise RobenchError(f"checkpoint {path} is corrupt or not a torch file ({_first_line(e)})") from None
        obj = _pick_weights(obj, path, use_ema)
        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            raise RobenchError(f"checkpoint {path} does not hold a state dict of tensors (parameter name -> tensor)")
        if not obj:
            raise RobenchError(f"checkpoint {path} holds an empty state dict (no weights); save the model's state_dict() into it")
        return obj, digest
    raise RobenchError(
        f"unsupported checkpoint format {path.suffix or '(no suffix)'!r} for {path}; use .safetensors "
        f"(or a state dict in {', '.join(PICKLE_SUFFIXES)}, {TIMM_TRAIN_SUFFIX})"
    )


PREFIXES = ("module.", "model.")


def clean_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (DataParallel's ``module.``, Lightning's ``model.``) shared by every key."""
    changed = True
    while changed and state:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def check_state_dict(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line error listing every key/shape difference between card and weights."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [f"{k} {got[k]} vs card {expected[k]}" for k in sorted(set(got) & set(expected)) if got[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}" + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
    if shapes:
        problems.append(f"shape mismatches: {'; '.join(shapes[:5])}" + (f" (+{len(shapes) - 5} more)" if len(shapes) > 5 else ""))
    if problems:
        raise RobenchError(f"{source}: card does not match weights: {', '.join(problems)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RobenchError(f"{source}: weights contain NaN or inf in {bad[:3]}; the checkpoint is broken")


def load_checkpoint(path: Path | str, card: Card | None = None, use_ema: bool = False) -> tuple[nn.Module, Card, str]:
    """Load ``(net, card, weights_sha256)``.

    Without ``card`` the card must sit beside the weights as ``NAME.json``. With one (``--arch``),
    any state dict of that architecture loads, after stripping ``module.``/``model.`` prefixes.
    """
    path = Path(path)
    state, digest = read_state_dict(path, use_ema)
    if card is None:
        card = Card.read(card_path_for(path))
        if path.suffix == SAFE_SUFFIX and card.weights_sha256 and card.weights_sha256 != digest:
            raise RobenchError(
                f"{path}: its card {card_path_for(path).name} describes other weights (sha256 {card.weights_sha256[:12]}... "
                f"vs the file's {digest[:12]}...); restore the matching pair, or pass the weights with --arch CARD"
            )
    else:
        state = clean_prefixes(state)
    if not isinstance(card.architecture, ArchConfig):
        raise RobenchError(f"{path}: --arch must describe a robench architecture (a robench card or zoo name)")
    net = build_model(card.architecture)
    check_state_dict(net, state, str(path))
    net.load_state_dict(state)
    net.eval()
    return net, card, digest
