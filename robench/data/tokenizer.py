"""robench's word-level tokenizer (the text preprocessing contract of robench checkpoints).

Deliberately simple and fully described by the card: lowercase, split into words and single
punctuation marks, map through a stored vocabulary, ``[UNK]`` for the rest, pad with ``[PAD]``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Sequence

import torch

from robench.errors import RobenchError

PAD, UNK = "[PAD]", "[UNK]"
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")
KIND = "robench-word"


class WordTokenizer:
    """Word tokenizer with a fixed vocabulary; index 0 is ``[PAD]``, 1 is ``[UNK]``."""

    incremental = True  # tokens never cross word boundaries: one-word edits can be re-encoded locally

    def __init__(self, vocab: Sequence[str], max_length: int, lowercase: bool = True) -> None:
        if len(vocab) < 2 or vocab[0] != PAD or vocab[1] != UNK:
            raise RobenchError(f"tokenizer vocabulary must start with {PAD!r}, {UNK!r}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length
        self.lowercase = lowercase
        self.pad_id, self.unk_id = 0, 1

    def __len__(self) -> int:
        return len(self.vocab)

    def words(self, text: str) -> list[str]:
        """Split ``text`` into word and punctuation tokens."""
        if self.lowercase:
            text = text.lower()
        return _TOKEN_RE.findall(text)

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without truncation (pieces of a text can be encoded separately
        when they are cut at word boundaries, which is how attacks re-encode one-word edits)."""
        get, unk = self.index.get, self.unk_id
        return [get(w, unk) for w in self.words(text)]

    def finish(self, ids: list[int]) -> list[int]:
        """Truncate to ``max_length``; an empty text becomes one ``[UNK]``."""
        return ids[: self.max_length] or [self.unk_id]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, truncated to ``max_length``."""
        return self.finish(self.ids(text))

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Batch-encode into a ``(B, L)`` LongTensor padded to the longest text."""
        rows = [self.encode(t) for t in texts]
        width = max((len(r) for r in rows), default=1)
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    @classmethod
    def build(
        cls, texts: Iterable[str], max_length: int, max_vocab: int = 5000, min_freq: int = 2, lowercase: bool = True
    ) -> "WordTokenizer":
        """Build a vocabulary from training texts: most frequent first, ties alphabetical."""
        probe = cls([PAD, UNK], max_length, lowercase)
        counts = Counter(w for t in texts for w in probe.words(t))
        ranked = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *ranked[: max_vocab - 2]], max_length, lowercase)

    def contract(self) -> dict[str, Any]:
        """The card's preprocessing entry for this tokenizer."""
        return {
            "kind": "text",
            "tokenizer": KIND,
            "lowercase": self.lowercase,
            "max_length": self.max_length,
            "vocab": self.vocab,
        }

    @classmethod
    def from_contract(cls, pre: dict[str, Any]) -> "WordTokenizer":
        if pre.get("tokenizer") != KIND:
            raise RobenchError(
                f"unsupported tokenizer {pre.get('tokenizer')!r} in card; robench checkpoints use {KIND!r}"
            )
        return cls(pre["vocab"], int(pre["max_length"]), bool(pre.get("lowercase", True)))
