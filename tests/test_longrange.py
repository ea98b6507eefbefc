"""The long-range retrieval task of results/studies/longrange.sh (robench/studies/longrange.py):
what every example holds, seeding, balance, and the table robench's text loader reads back."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from robench.data.files import load_table
from robench.data.tokenizer import PAD, UNK, WordTokenizer
from robench.errors import RobenchError
from robench.studies.longrange import NEEDLES, filler_word, main, needle_examples
from robench.threats.text.contamination import typo


def test_each_example_is_length_words_with_exactly_one_needle_naming_its_label():
    rows = needle_examples(200, 37, seed=3, fillers=50)
    words = WordTokenizer([PAD, UNK], 10_000)
    fillers = {filler_word(i) for i in range(50)}
    assert len(rows) == 200
    for text, label in rows:
        toks = words.words(text)
        assert len(toks) == 37 and text.split() == toks  # one robench token per word
        needles = [t for t in toks if t in NEEDLES]
        assert needles == [NEEDLES[label]]
        assert all(t in fillers for t in toks if t not in NEEDLES)


def test_fillers_are_distinct_alphabetic_words_no_typo_away_from_a_needle():
    """robench's word-swap draws alphabetic vocabulary words, so fillers must be letters; a typo (one
    character edit) of a filler must never be a needle, or the typo threat could add one."""
    words = [filler_word(i) for i in range(26**3)]
    assert words[:3] == ["zaaa", "zaab", "zaac"] and words[26] == "zaba" and words[-1] == "zzzz"
    assert len(set(words)) == len(words) and all(w.isalpha() for w in words)
    rng = np.random.default_rng(0)
    edits = {typo(w, rng) for w in words for _ in range(3)}
    assert not edits & set(NEEDLES)
    # why it holds: an edit of a 4-letter z-word keeps its z (insert, swap, other substitutions) or leaves 3-4
    # letters (delete, substitute the z), and every needle has 5+ letters and no z
    assert all(len(n) >= 5 and "z" not in n for n in NEEDLES)
    with pytest.raises(RobenchError, match="outside"):
        filler_word(26**3)


def test_draws_are_fixed_by_seed_length_and_fillers():
    a = needle_examples(30, 16, seed=0)
    assert a == needle_examples(30, 16, seed=0)
    assert a != needle_examples(30, 16, seed=1)
    assert a != needle_examples(30, 16, seed=0, fillers=999)
    # another length is another table, not a prefix or suffix of this one
    b = needle_examples(30, 17, seed=0)
    assert all(not t2.startswith(t1) and not t2.endswith(t1) for (t1, _), (t2, _) in zip(a, b))


def test_labels_are_balanced_and_needle_positions_uniform():
    rows = needle_examples(4003, 8, seed=5)
    counts = Counter(y for _, y in rows)
    assert sorted(counts) == [0, 1, 2, 3] and max(counts.values()) - min(counts.values()) <= 1
    where = Counter(next(i for i, w in enumerate(t.split()) if w in NEEDLES) for t, _ in rows)
    assert sorted(where) == list(range(8))
    # 500 expected per position, sd ~21: a fixed seed, so this is a check of the draw, not a flaky bound
    assert all(abs(c - 4003 / 8) < 90 for c in where.values()), where
    # the needle is independent of the label: every class appears at both ends
    ends = {(y, next(i for i, w in enumerate(t.split()) if w in NEEDLES) in (0, 7)) for t, y in rows}
    assert {(y, True) for y in range(4)} <= ends


def test_cli_writes_a_table_robench_reads_back(tmp_path: Path):
    out = tmp_path / "sub" / "test-64.tsv"
    main(["--length", "64", "--examples", "25", "--seed", "2", "--out", str(out)])
    ds = load_table(out)
    rows = needle_examples(25, 64, seed=2)
    assert ds.inputs == [t for t, _ in rows]
    assert ds.targets.tolist() == [y for _, y in rows]
    assert out.read_text().splitlines()[0] == "sentence\tlabel"


@pytest.mark.parametrize("args", [["--length", "0", "--examples", "3"], ["--length", "4", "--examples", "0"]])
def test_bad_sizes_are_one_line_and_exit_2(tmp_path: Path, args):
    out = tmp_path / "x.tsv"
    proc = subprocess.run([sys.executable, "-m", "robench.studies.longrange", *args, "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("robench: error: needle_examples needs")
    assert not out.exists()


ROWS = sorted((Path(__file__).resolve().parent.parent / "results" / "studies" / "longrange").glob("seed-*.csv"))


@pytest.mark.parametrize("length", [256, 512, 1024, 2048])
def test_published_rows_scored_the_tables_this_generator_writes(tmp_path: Path, length):
    """longrange.sh's test tables are not committed; the rows' dataset_sha256 says the published numbers
    came from exactly what `python -m robench.studies.longrange --length N --examples 500 --seed 1` writes."""
    from robench.results.schema import read_rows

    rows = [r for p in ROWS if p.name.endswith(f".n{length:04d}.csv") for r in read_rows(p)]
    assert len(rows) == 3 * 4 * 4  # 3 seeds x 4 models x (clean + 3 threats)
    out = tmp_path / f"test-{length}.tsv"
    main(["--length", str(length), "--examples", "500", "--seed", "1", "--out", str(out)])
    assert {r.dataset_sha256 for r in rows} == {load_table(out).sha256}
