"""Text contamination (the seed paper's data-contamination setting): random word swaps, word
drops and typos at a rate p, seeded per example (the same seed and example id give the same text).

Each word is hit independently with probability ``rate``, so the expected fraction of changed
words is exactly ``rate``; a hit always changes the word (a swap never draws the same word, a typo
never leaves it as it was).
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from robench.threats.registry import Param, register_threat
from robench.threats.text.base import TextThreat, scored_outcome
from robench.threats.text.words import WordText

if TYPE_CHECKING:  # numpy and torch are imported where threats compute, so listing them stays fast
    import numpy as np

RATE = Param("rate", "float", 0.1, "probability that each word is changed", "fraction of words", low=0.0, high=1.0)
_LETTERS = string.ascii_lowercase


def example_rng(seed: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(seed)


class Contamination(TextThreat):
    """Each word is hit with probability ``rate`` and rewritten by :meth:`edit`; one query per example."""

    def edit(self, word: str, rng: np.random.Generator, vocab: list[str]) -> str:
        raise NotImplementedError

    def finish(self, text: str) -> str:
        return text

    def corrupt(self, text: str, rng: np.random.Generator, vocab: list[str]) -> str:
        import numpy as np

        wt = WordText(text)
        hits = np.flatnonzero(rng.random(len(wt.words)) < self.rate)
        if not len(hits):
            return text
        return self.finish(wt.replace_many({int(i): self.edit(wt.words[i], rng, vocab) for i in hits}))

    def perturb(self, model, batch):
        import torch

        vocab = [w for w in getattr(model, "tokenizer").vocab if w.isalpha()] if hasattr(model, "tokenizer") else []
        adv = [self.corrupt(t, example_rng(s), vocab) for t, s in zip(batch.inputs, batch.example_seeds)]
        return scored_outcome(model, adv, torch.ones(len(adv)))


@register_threat
class WordSwap(Contamination):
    name = "word-swap"
    summary = "replace each word with probability rate by a random word of the model's vocabulary"
    params = (RATE,)

    def edit(self, word, rng, vocab):
        while True:  # draw until different (the vocabulary has thousands of words)
            w = vocab[int(rng.integers(len(vocab)))] if vocab else "".join(rng.choice(list(_LETTERS), 5))
            if w.lower() != word.lower():
                return w


@register_threat
class WordDrop(Contamination):
    name = "word-drop"
    summary = "delete each word with probability rate"
    params = (RATE,)

    def edit(self, word, rng, vocab):
        return ""

    def finish(self, text):
        return " ".join(text.split())  # no double spaces where words were


def typo(word: str, rng: np.random.Generator) -> str:
    """One character edit (insert, delete, substitute or swap adjacent) that changes ``word``."""
    ops = ["insert", "substitute"] + (["delete"] if len(word) > 1 else [])
    if len(word) > 1 and any(a != b for a, b in zip(word, word[1:])):
        ops.append("swap")
    op = ops[int(rng.integers(len(ops)))]
    if op == "insert":
        i = int(rng.integers(len(word) + 1))
        return word[:i] + _LETTERS[int(rng.integers(26))] + word[i:]
    if op == "delete":
        i = int(rng.integers(len(word)))
        return word[:i] + word[i + 1 :]
    if op == "substitute":
        i = int(rng.integers(len(word)))
        choices = [c for c in _LETTERS if c != word[i].lower()]
        return word[:i] + choices[int(rng.integers(len(choices)))] + word[i + 1 :]
    pairs = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    i = pairs[int(rng.integers(len(pairs)))]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


@register_threat
class Typo(Contamination):
    name = "typo"
    summary = "with probability rate per word, one character insert/delete/substitute/swap"
    params = (RATE,)

    def edit(self, word, rng, vocab):
        return typo(word, rng)
