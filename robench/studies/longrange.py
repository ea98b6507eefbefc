"""A seeded long-range retrieval task for the long-context study (``results/studies/longrange.sh``).

Each example is ``length`` words: ``length - 1`` filler words drawn uniformly from ``fillers`` words
(:func:`filler_word`: ``zaaa``, ``zaab``, ...) and one *needle*, one of the class words :data:`NEEDLES`,
at a uniform position; the label is the needle's class. The needle can sit anywhere, so a classifier
must retrieve one token out of ``length`` by its content; nothing about it depends on the position,
so the task is fair to every position scheme (learned absolute embeddings, ALiBi, RoPE, BSA's
spatial kernel). Labels are balanced (``n`` is split as evenly as the classes allow) and shuffled.
The draws come from ``numpy``'s generator seeded by ``SeedSequence([seed, length, fillers])``: one
table per ``(seed, length, fillers)``, the same on every machine.

Fillers are letters only because robench's word-swap draws its replacements from the alphabetic words
of the model's vocabulary (with fillers like ``f12`` it could only ever swap in a needle). No filler
is a needle or one character edit from one (fillers have 4 letters and start with ``z``; needles have
5-7 letters and no ``z``), so a typo never makes a needle.

``python -m robench.studies.longrange --length N --examples K --seed S --out FILE.tsv`` writes the
table robench's text loader reads (``sentence`` and ``label`` columns, labels 0..3).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robench.errors import RobenchError, exit_on_bad_input
from robench.fileio import atomic_write_text

NEEDLES = ("alpha", "bravo", "charlie", "delta")


def filler_word(i: int) -> str:
    """The ``i``-th filler: ``z`` and ``i`` in base 26 as three letters (``zaaa`` .. ``zzzz``)."""
    if not 0 <= i < 26**3:
        raise RobenchError(f"filler index {i} is outside 0..{26**3 - 1}")
    return "z" + "".join(chr(97 + i // 26**k % 26) for k in (2, 1, 0))


def needle_examples(n: int, length: int, seed: int, fillers: int = 1000) -> list[tuple[str, int]]:
    """``n`` examples ``(text, label)`` of the needle task (module docstring)."""
    if n < 1 or length < 1 or not 1 <= fillers <= 26**3:
        raise RobenchError(f"needle_examples needs n, length >= 1 and fillers in 1..{26**3}, got {n}, {length}, "
                           f"{fillers}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, length, fillers]))
    labels = rng.permutation(np.arange(n) % len(NEEDLES))
    words = rng.integers(0, fillers, size=(n, length))
    where = rng.integers(0, length, size=n)
    names = [filler_word(i) for i in range(fillers)]
    rows = []
    for i in range(n):
        text = [names[w] for w in words[i]]
        text[where[i]] = NEEDLES[labels[i]]
        rows.append((" ".join(text), int(labels[i])))
    return rows


def write_tsv(path: Path | str, rows: list[tuple[str, int]]) -> None:
    """Write ``rows`` as a ``sentence``/``label`` TSV (atomically: a temp file, then rename)."""
    atomic_write_text(path, "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))


def main(argv: list[str] | None = None) -> None:
    """Parse the options, write the table; a bad option is one line on stderr and exit 2."""
    p = argparse.ArgumentParser(prog="python -m robench.studies.longrange", description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, required=True, help="words per example")
    p.add_argument("--examples", type=int, required=True, help="number of examples")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--fillers", type=int, default=1000, help="filler vocabulary size")
    p.add_argument("--out", required=True, help="output .tsv")
    a = p.parse_args(argv)
    try:
        rows = needle_examples(a.examples, a.length, a.seed, a.fillers)
    except RobenchError as e:
        exit_on_bad_input(e)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_tsv(a.out, rows)


if __name__ == "__main__":
    main()
