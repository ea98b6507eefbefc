"""Word streams for language modelling (the ``lm`` task): a text file -> one stream of token ids.

The file is read the way WikiText-2's ``wiki.*.tokens`` files are counted by Merity et al. (2016)
and PyTorch's ``word_language_model`` example: every line is split on whitespace and followed by
an ``<eos>`` token (blank lines give ``<eos>`` alone); case is kept. The vocabulary is ``<unk>``,
``<eos>`` and the most frequent training words (ties alphabetical); any other word reads as
``<unk>`` (WikiText's own ``<unk>`` tokens included).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from robench.errors import RobenchError
from robench.fileio import read_text_file

UNK, EOS = "<unk>", "<eos>"
KIND = "robench-lm-whitespace"


def read_lines(path: Path | str, what: str = "token file") -> list[str]:
    """The lines of a UTF-8 text file; a missing, unreadable or wordless file is a one-line error."""
    lines = read_text_file(path, what).splitlines()
    if not any(line.split() for line in lines):
        raise RobenchError(f"{what} {path} holds no words; give a text file with one paragraph per line")
    return lines


class LMTokenizer:
    """Whitespace word tokenizer with ``<eos>`` line ends; id 0 is ``<unk>``, 1 is ``<eos>``."""

    def __init__(self, vocab: Sequence[str], context: int) -> None:
        if len(vocab) < 3 or vocab[0] != UNK or vocab[1] != EOS:
            raise RobenchError(f"language-model vocabulary must start with {UNK!r}, {EOS!r} and hold a word")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = context  # the model's context length, in tokens
        self.unk_id, self.eos_id = 0, 1

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def start_id(self) -> int:
        """The token the stream is read after: ``<eos>`` (a stream starts like a new line)."""
        return self.eos_id

    def describe(self) -> str:
        """What the text went through, for the rows."""
        return f"{KIND} tokenizer: whitespace words + <eos> per line, {len(self.vocab)}-word vocabulary, stream after <eos>"

    def line_ids(self, line: str) -> list[int]:
        """Ids of one line's words followed by ``<eos>``."""
        get, unk = self.index.get, self.unk_id
        return [get(w, unk) for w in line.split()] + [self.eos_id]

    def stream(self, lines: Iterable[str]) -> torch.Tensor:
        """One LongTensor of every line's ids, in order."""
        return torch.tensor([i for line in lines for i in self.line_ids(line)], dtype=torch.long)

    @classmethod
    def build(cls, lines: Iterable[str], context: int, max_vocab: int = 5000) -> "LMTokenizer":
        """``<unk>``, ``<eos>`` and the ``max_vocab - 2`` most frequent words (ties alphabetical)."""
        counts = Counter(w for line in lines for w in line.split())
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls([UNK, EOS, *ranked[: max(max_vocab - 2, 1)]], context)

    def contract(self) -> dict[str, Any]:
        """The card's preprocessing entry."""
        return {
            "kind": "text",
            "tokenizer": KIND,
            "lowercase": False,
            "max_length": self.max_length,
            "line_end": EOS,
            "unknown": UNK,
            "vocab": self.vocab,
        }

    @classmethod
    def from_contract(cls, pre: dict[str, Any]) -> "LMTokenizer":
        if pre.get("tokenizer") != KIND:
            raise RobenchError(f"unsupported tokenizer {pre.get('tokenizer')!r} in a language-model card; expected {KIND!r}")
        return cls(pre["vocab"], int(pre["max_length"]))
