"""Embedded datasets, seeded stratified sampling, the tokenizer, Wilson intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robench.data.base import stratified_sample
from robench.data.registry import load_dataset
from robench.data.tokenizer import WordTokenizer
from robench.data.wordnet_topics import build, parse_definitions
from robench.errors import RobenchError
from robench.results.stats import wilson_interval


def test_digits_split():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert len(test) == 359
    assert set(train.ids).isdisjoint(test.ids)
    assert float(train.inputs.min()) == 0.0 and float(train.inputs.max()) == 1.0
    assert train.inputs.shape[1:] == (1, 8, 8)
    ref = load_digits()
    i = test.ids[5]
    assert torch.equal(test.inputs[5, 0], torch.from_numpy(ref.images[i] / 16.0).float())
    assert int(test.targets[5]) == ref.target[i]
    counts = torch.bincount(test.targets, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified 20%


def test_unknown_dataset_and_split():
    with pytest.raises(RobenchError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(RobenchError, match="has splits train, test"):
        load_dataset("digits", "validation")


def test_stratified_sample_is_seeded_proportional_and_sorted():
    targets = np.array([0] * 50 + [1] * 30 + [2] * 20)
    rng = np.random.default_rng(0)
    targets = targets[rng.permutation(100)]
    a = stratified_sample(targets, 10, seed=3)
    assert a == stratified_sample(targets, 10, seed=3)
    assert a != stratified_sample(targets, 10, seed=4)
    assert a == sorted(a) and len(set(a)) == 10
    assert np.bincount(targets[a]).tolist() == [5, 3, 2]
    assert stratified_sample(targets, 1000, seed=0) == list(range(100))


def test_wordnet_definition_parsing_follows_nltk_rules():
    line = (
        "02084071 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; "
        "\"the dog barked all night\"; occurs in many breeds  \n"
        "02084072 06 n 01 cup 0 000 | a small open container  \n"
        "02084073 05 n 01 x 0 000 | too short  \n"
        "02084074 09 n 01 y 0 000 | an idea that is not a topic here  \n"
    )
    defs = parse_definitions("  1 This software and database is licensed\n" + line)
    assert defs["noun.animal"] == ["a member of the genus Canis; occurs in many breeds"]
    assert defs["noun.artifact"] == ["a small open container"]
    assert defs["noun.food"] == [] and defs["noun.plant"] == []


def test_wordnet_topics_splits(wordnet_available):
    train, test = load_dataset("wordnet-topics", "train"), load_dataset("wordnet-topics", "test")
    assert (len(train), len(test)) == (4800, 1200)
    assert torch.bincount(test.targets).tolist() == [300, 300, 300, 300]
    assert set(train.inputs).isdisjoint(test.inputs)
    assert all(len(t.split()) >= 3 for t in test.inputs)
    assert test.labels == ["noun.animal", "noun.artifact", "noun.food", "noun.plant"]


def test_wordnet_topics_build_is_reproducible(wordnet_available):
    from robench.resources.wordnet import find_wordnet

    text = find_wordnet().read("data.noun").decode()
    assert build(text) == build(text)


def test_missing_wordnet_is_one_clear_line(tmp_path, cli, monkeypatch):
    import robench.resources.wordnet as wn

    monkeypatch.setattr(wn, "find_wordnet", lambda include_debian=True: None)
    with pytest.raises(RobenchError, match="WordNet 3.0 not found; install it with `apt-get install"):
        wn.require_wordnet()


def test_tokenizer_vocab_and_padding():
    tok = WordTokenizer.build(["the cat sat", "the dog sat", "a cat"], max_length=4, min_freq=2)
    assert tok.vocab == ["[PAD]", "[UNK]", "cat", "sat", "the"]
    ids = tok(["The cat, sat!", "dog"])
    assert ids.tolist() == [[4, 2, 1, 3], [1, 0, 0, 0]]
    assert WordTokenizer.from_contract(tok.contract()).vocab == tok.vocab


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (347, 359), (1, 1), (600, 1200)])
def test_wilson_matches_the_formula(k, n):
    # Wilson's score interval written out: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    z, p = 1.959963984540054, k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(max(0.0, (centre - half) / (1 + z * z / n)), abs=1e-9)
    assert hi == pytest.approx(min(1.0, (centre + half) / (1 + z * z / n)), abs=1e-9)


def test_dataset_slices_keep_ids_and_hash_the_slice():
    from robench.data.base import content_sha256
    from robench.data.registry import load_dataset, parse_slice

    assert parse_slice("a.gz[:8000]") == ("a.gz", None, 8000)
    assert parse_slice("a.gz[8000:]") == ("a.gz", 8000, None)
    assert parse_slice("a.gz[-5:-1]") == ("a.gz", -5, -1)
    assert parse_slice("digits") is None and parse_slice("x[1]") is None
    full = load_dataset("digits")
    part = load_dataset("digits[10:20]")
    tail = load_dataset("digits[-3:]")
    assert part.name == "digits[10:20]" and part.ids == full.ids[10:20] and len(part) == 10
    assert torch.equal(part.inputs, full.inputs[10:20]) and torch.equal(part.targets, full.targets[10:20])
    assert part.sha256 == content_sha256(full.inputs[10:20], full.targets[10:20]) != full.sha256
    assert tail.ids == full.ids[-3:]
    with pytest.raises(RobenchError, match=r"slice 'digits\[500:600\]' is empty: 'digits' has 359 examples"):
        load_dataset("digits[500:600]")


def test_a_bracketed_colon_that_is_no_slice_names_the_syntax(tmp_path):
    from robench.data.registry import parse_slice

    with pytest.raises(RobenchError, match=r"'dev.tsv\[a:b\]': \[a:b\] is not a slice of positions; write SOURCE\[START:STOP\]"):
        parse_slice("dev.tsv[a:b]")
    with pytest.raises(RobenchError, match=r"\[::2\] is not a slice"):
        parse_slice("digits[::2]")
    odd = tmp_path / "run[1:x]"  # a file really named so is a name, not a slice
    odd.write_text("")
    assert parse_slice(str(odd)) is None
