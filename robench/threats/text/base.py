"""Text threats: attack a batch of correctly classified texts, return adversarial texts + cost."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from robench.threats.base import Outcome, Threat, ThreatBatch
from robench.threats.text.words import changed_word_fraction

if TYPE_CHECKING:  # torch is imported where threats compute, so listing them stays fast
    import torch
    from torch import nn


class TextThreat(Threat):
    """Base class of text threats; ``perturbation`` is the fraction of words changed, and the
    adversarial texts are kept in the records."""

    modality = "text"
    perturbation_unit = "words"

    def measure(self, batch: ThreatBatch, outcome: Outcome) -> Outcome:
        adv = list(outcome.adv)
        changed = [changed_word_fraction(t, a) for t, a in zip(batch.inputs, adv)]
        return replace(outcome, perturbation=changed, adv_text=adv)


def scored_outcome(model: nn.Module, adv: list[str], queries: torch.Tensor, probs: torch.Tensor | None = None,
                   batch_size: int = 512) -> Outcome:
    """The outcome of adversarial texts ``adv``: predictions from ``probs`` (scored here when not given)."""
    import torch

    if not adv:
        return Outcome(adv=[], adv_pred=torch.zeros(0, dtype=torch.long), queries=queries, scores=torch.zeros(0, 0))
    probs = text_probs(model, adv, batch_size) if probs is None else probs
    return Outcome(adv=adv, adv_pred=probs.argmax(-1), queries=queries, scores=probs)


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
