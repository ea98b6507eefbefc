"""Word segmentation and replacement compatible with textattack's ``AttackedText``.

A word is a run of word characters (plus internal ``'-_*@``), as in textattack's
``words_from_text``; a replacement swaps that span of the original string and keeps all other
characters, so robench's native attacks produce byte-identical texts to textattack's.
"""

from __future__ import annotations

import difflib
import re

_EXCEPTIONS = "'-_*@"
_WORD_RE = re.compile(r"[\w'\-_\*@]+")


def words_from_text(text: str) -> list[str]:
    """textattack's word list for ``text`` (non-CJK text)."""
    words = []
    for chunk in " ".join(text.split()).split():
        chunk = chunk.strip(_EXCEPTIONS)
        words.extend(w.strip(_EXCEPTIONS) for w in _WORD_RE.findall(chunk))
    return [w for w in words if w]


class WordText:
    """A text with its words located in the string, for position-preserving replacements."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = words_from_text(text)
        self.spans: list[tuple[int, int]] = []
        cursor = 0
        for w in self.words:
            start = text.index(w, cursor)
            self.spans.append((start, start + len(w)))
            cursor = start + len(w)

    def replace(self, index: int, new_word: str) -> str:
        """The text with word ``index`` replaced by ``new_word`` (everything else untouched)."""
        s, e = self.spans[index]
        return self.text[:s] + new_word + self.text[e:]

    def replace_many(self, new_words: dict[int, str]) -> str:
        """Replace several words at once (an empty string deletes the word)."""
        out, cursor = [], 0
        for i in sorted(new_words):
            s, e = self.spans[i]
            out.append(self.text[cursor:s])
            out.append(new_words[i])
            cursor = e
        out.append(self.text[cursor:])
        return "".join(out)


def changed_word_fraction(original: str, perturbed: str) -> float:
    """Fraction of the original's words that were replaced or deleted (TextAttack's perturbed-word %)."""
    a, b = words_from_text(original), words_from_text(perturbed)
    if not a:
        return 0.0
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) / len(a)
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    changed = sum(i2 - i1 for tag, i1, i2, _, _ in sm.get_opcodes() if tag in ("replace", "delete"))
    return changed / len(a)
