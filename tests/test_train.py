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


@pytest.mark.slow
def test_train_text_model_card_carries_tokenizer(tmp_path, cli, wordnet_available):
    out = tmp_path / "t.safetensors"
    proc = cli("train", "--task", "wordnet-topics", "--variant", "bsa", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    pre = card["preprocessing"]
    assert pre["kind"] == "text" and pre["tokenizer"] == "robench-word" and pre["vocab"][:2] == ["[PAD]", "[UNK]"]
    assert card["architecture"]["vocab_size"] == len(pre["vocab"])
    assert card["labels"] == ["noun.animal", "noun.artifact", "noun.food", "noun.plant"]
    # the zoo's defaults stand (2,000 words, 32 tokens) and add no fields to the card of a named task
    assert pre["max_length"] == 32 and len(pre["vocab"]) <= 2000
    assert not {"vocab_size", "max_length", "text_column", "dataset_path"} & set(card["training"])


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--task", "mnist", "--variant", "sa"], "unknown task 'mnist'"),
        (["--task", "digits", "--variant", "xl"], "unknown variant 'xl'"),
        (["--task", "digits", "--variant", "sa", "--epochs", "0"], "--epochs must be >= 1"),
        (["--task", "digits", "--variant", "sa", "--vocab-size", "100"], "--vocab-size is for text tasks and --task lm"),
        (["--task", "digits", "--variant", "sa", "--text-column", "q"], "--text-column is for text files"),
        (["--task", "wordnet-topics", "--variant", "sa", "--vocab-size", "3"], "--vocab-size must be >= 4"),
        (["--task", "wordnet-topics", "--variant", "sa", "--max-length", "0"], "--max-length must be >= 1 token"),
        (["--task", "wordnet-topics", "--variant", "sa", "--embed-dim", "48", "--heads", "5"],
         "--heads 5 must divide the width --embed-dim 48; choose one of 1, 2, 3, 4, 6, 8, 12, 16"),
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


@pytest.mark.slow
def test_train_on_sliced_idx_file_holds_out_the_rest(tmp_path, cli):
    """MNIST idx as a task: FILE[:k] trains, FILE[k:] evaluates; geometry from the images; the card
    points evaluate at the held-out slice, and the recorded accuracy is what evaluate measures."""
    from conftest import SHARED_DATA

    src = SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not src.exists():
        pytest.skip("../shared/data/mnist is not beside the repository")
    out = tmp_path / "m-s0.safetensors"
    proc = cli("train", "--task", f"{src}[:300]", "--eval-data", f"{src}[9900:]", "--variant", "bsa",
               "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    arch = card["architecture"]
    assert (arch["img_size"], arch["patch_size"], arch["in_chans"], arch["num_classes"]) == (28, 7, 1, 10)
    assert card["training"]["n"] == 300 and card["training"]["dataset"] == f"{src}[:300]"
    assert card["evaluation"]["dataset"] == f"{src}[9900:]" and card["evaluation"]["n"] == 100
    proc = cli("evaluate", str(out), "--suite", "clean", "--device", "cpu", "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    row = proc.stdout.splitlines()[1].split(",")
    assert row[3] == f"{src}[9900:]" and row[5] == "100"
    assert float(row[7]) == pytest.approx(card["evaluation"]["clean_accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    "task,extra,fragment",
    [
        ("{src}[:300]", [], "needs --eval-data"),
        ("{src}[:300]", ["--eval-data", "{src}[9900:]", "--patch-size", "5"], "--patch-size must divide the image side 28"),
        ("wordnet-topics", ["--patch-size", "2"], "--patch-size is for image tasks"),
        ("digits", ["--patch-size", "3"], "--patch-size must divide the image side 8, got 3"),
        ("{src}[20000:]", ["--eval-data", "{src}[9900:]"], "is empty"),
    ],
)
def test_train_image_source_bad_input_exit_2(tmp_path, cli, task, extra, fragment):
    from conftest import SHARED_DATA

    src = SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not src.exists():
        pytest.skip("../shared/data/mnist is not beside the repository")
    fill = [a.format(src=src) for a in ["--task", task, *extra]]
    proc = cli("train", *fill, "--variant", "sa", "--out", str(tmp_path / "x.safetensors"), "--quiet")
    assert_one_line_error(proc, fragment)
    assert list(tmp_path.iterdir()) == []


def test_train_result_is_the_accuracy_of_the_written_checkpoint(tmp_path):
    """TrainResult names its metric; the value is what the checkpoint reloaded from disk scores."""
    from robench.data.registry import load_dataset
    from robench.engine.jobs import predict
    from robench.models.loading import load_model
    from robench.training.classifier import TrainArgs, train

    args = TrainArgs(task="digits", variant="sa", epochs=1, embed_dim=16, depth=1, num_heads=2, train_examples=100, threads=1)
    result = train(args, tmp_path / "d.safetensors")
    assert result.metric == "accuracy" and [s.epoch for s in result.history] == [1]
    test = load_dataset("digits", "test")
    preds = predict(load_model(str(result.path), "cpu"), test, 128)
    assert result.test_metric == float((preds == test.targets).sum()) / len(test)
    assert result.card.evaluation["clean_accuracy"] == result.test_metric
