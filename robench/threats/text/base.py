"""Text threats: attack a batch of correctly classified texts, return adversarial texts + cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from robench.threats.base import Threat

if TYPE_CHECKING:  # torch is imported where threats compute, so listing them stays fast
    import torch
    from torch import nn


@dataclass
class TextOutcome:
    adv_texts: list[str]
    adv_pred: torch.Tensor  # (B,) prediction on each adversarial text
    queries: torch.Tensor  # (B,) model queries spent per example
    adv_probs: torch.Tensor | None = None  # (B, classes) the probabilities adv_pred came from (top-5 accuracy)


class TextThreat(Threat):
    """Base class of text threats; ``perturbation`` is the fraction of words changed."""

    modality = "text"
    norm = "words"

    def attack_texts(self, model: nn.Module, texts: Sequence[str], labels: Sequence[int], seeds: Sequence[int]) -> TextOutcome:
        raise NotImplementedError


def text_probs(model: nn.Module, texts: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    """float32 softmax probabilities for raw texts.

    The model sees token ids, so texts that tokenize identically (e.g. two out-of-vocabulary
    synonyms) are scored once; unique id sequences are batched by length to keep padding small.
    """
    import torch

    with torch.inference_mode():
        return ids_probs(model, [tuple(model.tokenizer.encode(t)) for t in texts], batch_size)


def ids_probs(model: nn.Module, ids: Sequence[tuple[int, ...]], batch_size: int = 512) -> torch.Tensor:
    """Probabilities for token-id rows: each distinct row is scored once, batched by length."""
    import torch

    from robench.device import module_device

    with torch.inference_mode():
        tok = model.tokenizer
        unique = sorted(set(ids), key=lambda r: (len(r), r))
        device = module_device(model)
        probs: dict[tuple[int, ...], torch.Tensor] = {}
        for i in range(0, len(unique), batch_size):
            chunk = unique[i : i + batch_size]
            width = len(chunk[-1])
            batch = torch.tensor([r + (tok.pad_id,) * (width - len(r)) for r in chunk], dtype=torch.long)
            p = torch.softmax(model(batch.to(device)).float(), dim=-1).cpu()
            probs.update(zip(chunk, p))
        return torch.stack([probs[r] for r in ids]) if ids else torch.zeros(0, 0)
