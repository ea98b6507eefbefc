"""Wrappers that put a checkpoint's preprocessing contract inside the model.

Attacks and evaluation always feed raw inputs: images in [0, 1] pixel space (so eps means pixels)
and token ids from the card's tokenizer. Normalisation happens here, never in the data pipeline.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from robench.data.tokenizer import WordTokenizer
from robench.errors import RobenchError


class ImageClassifier(nn.Module):
    """``logits = net((x - mean) / std)`` for ``x`` in [0, 1] of shape ``(B, C, H, W)``.

    ``logit_indices`` restricts the logits to a subset of the classes (a 1,000-way ImageNet head on
    ImageNet-A/R, as timm's ``validate.py --valid-labels``): attacks and predictions see only those.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 logit_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None, :, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None, :, None, None], persistent=False)
        self.logit_indices: Tensor | None
        if logit_indices is None:
            self.logit_indices = None
        else:
            self.register_buffer("logit_indices", torch.tensor(list(logit_indices), dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_normalized((x - self.mean) / self.std)

    def forward_normalized(self, z: Tensor) -> Tensor:
        """Logits of already normalised inputs (the preprocessing probe tries those)."""
        logits = self.net(z)
        return logits if self.logit_indices is None else logits[:, self.logit_indices]

    @classmethod
    def from_contract(cls, net: nn.Module, pre: dict[str, Any]) -> "ImageClassifier":
        if pre.get("kind") != "image":
            raise RobenchError(f"expected an image preprocessing contract, got kind={pre.get('kind')!r}")
        mean, std = list(pre["mean"]), list(pre["std"])
        if len(mean) != pre["channels"] or len(std) != pre["channels"] or min(std) <= 0:
            raise RobenchError("card preprocessing: mean/std must have one positive entry per channel")
        return cls(net, mean, std)


class TextClassifier(nn.Module):
    """A text model plus its tokenizer: ``forward`` takes token ids, ``encode`` takes strings."""

    def __init__(self, net: nn.Module, tokenizer: WordTokenizer) -> None:
        super().__init__()
        self.net = net
        self.tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> Tensor:
        return self.tokenizer(texts)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.net(input_ids)

    def predict_texts(self, texts: Sequence[str], device: torch.device | str = "cpu") -> Tensor:
        """Logits for raw strings."""
        return self(self.encode(texts).to(device))
