"""`robench train`: deterministic on CPU, writes checkpoint + card atomically with provenance."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import assert_one_line_error

TINY = ["--epochs", "1", "--embed-dim", "16", "--depth", "1", "--heads", "2", "--quiet"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_train_is_deterministic_and_seed_sensitive(tmp_path, cli):
    outs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / f"{name}.safetensors"
        proc = cli("train", "--task", "digits", "--variant", "bsa-grc", "--seed", seed, "--out", str(out), *TINY)
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    a, b, c = (_sha(o) for o in outs)
    assert a == b
    assert a != c
    card = json.loads(outs[0].with_suffix(".json").read_text())
    assert card["weights_sha256"] == a
    assert card["training"]["command"].startswith("robench train --task digits --variant bsa-grc --seed 0 --out ")
    assert card["training"]["dataset"] == "digits" and card["training"]["epochs"] == 1
    assert len(card["training"]["dataset_sha256"]) == 64
    assert card["evaluation"]["n"] == 359 and 0.0 <= card["evaluation"]["clean_accuracy"] <= 1.0
    assert card["preprocessing"]["input_range"] == [0.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors", "b.json", "b.safetensors", "c.json", "c.safetensors"]


def test_train_text_model_card_carries_tokenizer(tmp_path, cli, wordnet_available):
    out = tmp_path / "t.safetensors"
    proc = cli("train", "--task", "wordnet-topics", "--variant", "bsa", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    pre = card["preprocessing"]
    assert pre["kind"] == "text" and pre["tokenizer"] == "robench-word" and pre["vocab"][:2] == ["[PAD]", "[UNK]"]
    assert card["architecture"]["vocab_size"] == len(pre["vocab"])
    assert card["labels"] == ["noun.animal", "noun.artifact", "noun.food", "noun.plant"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--task", "mnist", "--variant", "sa"], "unknown task 'mnist'"),
        (["--task", "digits", "--variant", "xl"], "unknown variant 'xl'"),
        (["--task", "digits", "--variant", "sa", "--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_train_bad_input_exit_2(tmp_path, cli, args, fragment):
    out = tmp_path / "x.safetensors"
    proc = cli("train", *args, "--out", str(out), "--quiet")
    assert_one_line_error(proc, fragment)
    assert list(tmp_path.iterdir()) == []


def test_train_missing_output_dir_exit_2(tmp_path, cli):
    proc = cli("train", "--task", "digits", "--variant", "sa", "--out", str(tmp_path / "no" / "x.safetensors"), *TINY)
    assert_one_line_error(proc, "does not exist")
