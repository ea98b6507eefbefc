"""SST-2 (GLUE) from ../shared/data end to end: load the TSVs, train on a slice, attack dev.

Skips cleanly when ../shared/data is absent (a user's fresh checkout has no shared/).
"""

from __future__ import annotations

import json

import pytest

from conftest import SHARED_DATA, assert_one_line_error
from robench.data.registry import load_dataset

SST2 = SHARED_DATA / "sst2"
needs_sst2 = pytest.mark.skipif(not (SST2 / "dev.tsv").is_file(), reason="../shared/data/sst2 not present")


@needs_sst2
def test_sst2_tsv_loads_with_counts_and_balance():
    dev = load_dataset(str(SST2 / "dev.tsv"))
    assert len(dev) == 872 and dev.labels == ["0", "1"]
    assert dev.targets.bincount().tolist() == [428, 444]
    assert dev.inputs[0] == "it 's a charming and often affecting journey ."


@needs_sst2
@pytest.mark.slow
def test_sst2_train_slice_then_attack_dev(cli, tmp_path, wordnet_available):
    ckpt = tmp_path / "sst2-bsa.safetensors"
    proc = cli("train", "--task", str(SST2 / "train.tsv"), "--eval-data", str(SST2 / "dev.tsv"),
               "--train-examples", "3000", "--epochs", "4", "--variant", "bsa", "--out", str(ckpt), "--quiet")
    assert proc.returncode == 0, proc.stderr
    card = json.loads(ckpt.with_suffix(".json").read_text())
    assert card["evaluation"]["n"] == 872 and card["evaluation"]["clean_accuracy"] > 0.6
    assert card["training"]["n"] == 3000 and card["training"]["train_examples"] == 3000
    rows_path = tmp_path / "rows.json"
    proc = cli("evaluate", str(ckpt), "-n", "200", "--threat", "pwws-fast", "--threat", "word-swap:rate=0.2",
               "--device", "cpu", "--json", str(rows_path), "--out", str(tmp_path / "rec"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(rows_path.read_text())
    assert [r["threat"].split(":")[0] for r in rows] == ["none", "pwws-fast", "word-swap"]
    clean = rows[0]["clean_acc"]
    assert all(r["n"] == 200 and r["attacked_acc"] <= clean for r in rows)
    assert rows[1]["attacked_acc"] < clean  # PWWS breaks some of the 200
    assert rows[1]["perturbation_unit"] == "words" and 0 < rows[1]["mean_perturbation"] <= 1


@pytest.mark.slow
def test_bad_text_tables_exit_2(cli, tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("sentence\tlabel\n")
    proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(empty), "--device", "cpu")
    assert_one_line_error(proc, "is empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("words,target\nhello,1\n")
    proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(bad), "--device", "cpu")
    assert_one_line_error(proc, "need a text column")
    two = tmp_path / "two.csv"
    two.write_text("text,label\nhello there,0\nbye now,5\n")  # integer labels are positions: 5 is beyond 4 classes
    proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(two), "--device", "cpu")
    assert_one_line_error(proc, "has integer labels 5 but model wordnet-text-sa has 4 classes (0..3)")
    proc = cli("train", "--task", str(two), "--variant", "sa", "--out", str(tmp_path / "m.safetensors"))
    assert_one_line_error(proc, "needs --eval-data PATH")
