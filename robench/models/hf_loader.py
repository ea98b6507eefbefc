"""``hf:DIR``: a local Hugging Face sequence-classification model directory as a robench text model.

``AutoModelForSequenceClassification`` and ``AutoTokenizer`` are loaded from ``DIR`` only
(``local_files_only``: nothing is downloaded). The wrapper exposes robench's text-model interface
(``encode`` -> padded ids, ``forward(ids)`` -> logits, ``predict_texts``, ``tokenizer``), so every
text threat runs on it, textattack's recipes included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from robench.models.wrappers import TextClassifier

from robench.checkpoint.card import Card, ExternalArch
from robench.data.base import TEXT
from robench.errors import RobenchError
from robench.fileio import sha256_file


class HFTokenizer:
    """robench's tokenizer interface over a Hugging Face tokenizer (whole texts only)."""

    incremental = False  # subword merges and special tokens: one-word edits are re-encoded whole

    def __init__(self, tokenizer, max_length: int) -> None:
        self.hf = tokenizer
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.vocab = [w for w, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]

    def encode(self, text: str) -> list[int]:
        return self.hf(text, truncation=True, max_length=self.max_length)["input_ids"]

    def __call__(self, texts: Sequence[str]) -> Tensor:
        rows = [self.encode(t) for t in texts]
        width = max((len(r) for r in rows), default=1)
        return torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


class HFTextClassifier(TextClassifier):
    """A :class:`TextClassifier` whose forward builds the attention mask from the padding id."""

    def forward(self, input_ids: Tensor) -> Tensor:
        mask = (input_ids != self.tokenizer.pad_id).long()
        return self.net(input_ids=input_ids, attention_mask=mask).logits


def load_hf(spec: str) -> tuple[HFTextClassifier, Card, str]:
    """Load ``hf:DIR``; returns ``(module, card, sha256 of the weights file)``."""
    directory = Path(spec[len("hf:"):])
    if not directory.is_dir():
        raise RobenchError(f"{spec}: {directory} is not a directory (hf: takes a local save_pretrained folder)")
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        model = AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True)
        tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise RobenchError(f"{spec}: not a loadable sequence-classification model ({str(e).splitlines()[0][:160]})") from None
    model.eval()
    cfg = model.config
    labels = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
    max_length = int(min(getattr(tok, "model_max_length", 512) or 512, getattr(cfg, "max_position_embeddings", 512) or 512))
    weights = next((directory / n for n in ("model.safetensors", "pytorch_model.bin") if (directory / n).is_file()), None)
    digest = sha256_file(weights) if weights else ""
    card = Card(
        task=TEXT, labels=labels,
        architecture=ExternalArch("hf", str(cfg.model_type), cfg.num_labels),
        preprocessing={"kind": "text", "tokenizer": "hf", "dir": str(directory), "max_length": max_length,
                       "lowercase": bool(getattr(tok, "do_lower_case", False))},
        name=spec, weights_sha256=digest, params=sum(p.numel() for p in model.parameters()),
    )
    return HFTextClassifier(model, HFTokenizer(tok, max_length)), card, digest
