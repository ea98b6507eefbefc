"""Everything the engine does works on streamed image files: resume after kill -9, shards + merge
(ImageNet-C parts included), --save-adv, --baseline, curve, attack, train on a mixed-size folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from imagetrees import make_tree
from robench.data.imagenet import synsets
from test_imagenet import _imagenet_c_tree
from test_resume import _files, _progress, _without_timing
from test_streaming import card_copy

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "imgs"
    make_tree(root, CLASSES, 8, seed=11)
    return root


@pytest.mark.slow
def test_streamed_run_killed_then_resumed_equals_an_uninterrupted_run(tree, tmp_path):
    cmd = [sys.executable, "-m", "robench", "evaluate", "digits-vit-sa", "--dataset", str(tree), "--threat",
           "pgd:eps=0.05,alpha=0.01,steps=20", "--threat", "fgsm:eps=0.05", "--batch-size", "4", "--workers", "1",
           "--device", "cpu", "--quiet"]

    def start(out, export):
        return subprocess.Popen([*cmd, "--out", str(out), "--json", str(export)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    proc = start(tmp_path / "ref", tmp_path / "ref.json")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    out, export = tmp_path / "run", tmp_path / "run.json"
    for _ in range(4):  # each kill lands a batch or two after the previous run's last record
        target = _progress(out) + 6
        proc = start(out, export)
        while proc.poll() is None and _progress(out) < target:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run finished before the kill; give it more work"
        assert not export.exists()
    proc = start(out, export)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert _files(out) == _files(tmp_path / "ref")
    assert _without_timing(json.loads(export.read_text())) == _without_timing(json.loads((tmp_path / "ref.json").read_text()))


@pytest.mark.slow
def test_shards_of_a_streamed_run_and_of_imagenet_c_merge_to_one_process(tree, tmp_path, cli):
    cases = [("digits-vit-sa", str(tree), ["--threat", "fgsm:eps=0.1", "digits-vit-grc"])]
    _imagenet_c_tree(tmp_path / "c")
    weights = card_copy(tmp_path, "digits-vit-sa", labels=list(synsets()[:10]))
    cases.append((str(weights), f"imagenet-c:{tmp_path / 'c'}", ["--suite", "clean"]))
    for k, (model, data, extra) in enumerate(cases):
        base = ["evaluate", model, "--dataset", data, *extra, "--device", "cpu", "--quiet"]
        pair = ["--baseline", "digits-vit-grc"] if "digits-vit-grc" in extra else []  # paired by merge for shards
        one = tmp_path / f"one{k}.json"
        assert cli(*base, *pair, "--json", str(one)).returncode == 0
        out = tmp_path / f"shards{k}"
        for i in range(3):
            proc = cli(*base, "--shard", f"{i}/3", "--out", str(out))
            assert proc.returncode == 0, proc.stderr
        merged = tmp_path / f"merged{k}.json"
        proc = cli("merge", str(out), *pair, "--json", str(merged))
        assert proc.returncode == 0, proc.stderr
        want = _without_timing(json.loads(one.read_text()))
        got = _without_timing(json.loads(merged.read_text()))
        key = lambda r: (r["model"], r["dataset"], r["split"], r["threat"])  # noqa: E731
        assert sorted(got, key=key) == sorted(want, key=key)


@pytest.mark.slow
def test_save_adv_from_streamed_images_reevaluates_to_the_attacked_accuracy(tree, tmp_path, cli):
    adv = tmp_path / "adv.safetensors"
    rows = tmp_path / "rows.json"
    proc = cli("attack", "digits-vit-sa", "--dataset", str(tree), "--threat", "pgd:eps=0.1,alpha=0.025,steps=10",
               "--save-adv", str(adv), "--device", "cpu", "--json", str(rows))
    assert proc.returncode == 0, proc.stderr
    attacked = [r for r in json.loads(rows.read_text()) if r["threat"] != "none"][0]["attacked_acc"]
    proc = cli("evaluate", "digits-vit-sa", "--dataset", str(adv), "--suite", "clean", "--device", "cpu",
               "--json", str(tmp_path / "again.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "again.json").read_text())[0]["clean_acc"] == attacked
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".adv")] == []  # no temp file left


@pytest.mark.slow
def test_curve_and_train_on_a_mixed_size_folder(tree, tmp_path, cli):
    proc = cli("curve", "digits-vit-sa", "--dataset", str(tree), "--threat", "fgsm", "--sweep", "eps=0,0.1",
               "--device", "cpu", "--csv", str(tmp_path / "curve.csv"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    # train streams the folder through the eval transform (16 px, crop_pct 1); its card's accuracy is
    # what evaluate measures on the same folder
    ckpt = tmp_path / "m.safetensors"
    proc = cli("train", "--task", str(tree), "--eval-data", str(tree), "--variant", "sa", "--epochs", "2",
               "--img-size", "16", "--workers", "1", "--out", str(ckpt), "--quiet")
    assert proc.returncode == 0, proc.stderr
    card = json.loads(ckpt.with_suffix(".json").read_text())
    assert card["preprocessing"]["size"] == [16, 16] and card["preprocessing"]["crop_pct"] == 1.0
    proc = cli("evaluate", str(ckpt), "--suite", "clean", "--device", "cpu", "--json", str(tmp_path / "e.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "e.json").read_text())[0]["clean_acc"] == round(card["evaluation"]["clean_accuracy"], 6)


@pytest.mark.slow
def test_train_augment_is_timms_transform_and_reproducible(tree, tmp_path, cli):
    """--augment (timm's train transform in the workers, seeded per epoch) trains reproducibly and
    differently from the default (no augmentation); in-memory images refuse it."""
    import hashlib

    def sha(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    base = ("train", "--task", str(tree), "--eval-data", str(tree), "--variant", "sa", "--epochs", "1", "--img-size", "16",
            "--workers", "1", "--threads", "1", "--quiet")
    outs = {}
    for name, extra in (("a", ("--augment",)), ("b", ("--augment",)), ("plain", ())):
        outs[name] = tmp_path / f"{name}.safetensors"
        proc = cli(*base, *extra, "--out", str(outs[name]))
        assert proc.returncode == 0, proc.stderr
    assert sha(outs["a"]) == sha(outs["b"]) != sha(outs["plain"])
    proc = cli("train", "--task", "digits", "--variant", "sa", "--augment", "--out", str(tmp_path / "d.safetensors"))
    assert proc.returncode == 2 and "--augment applies timm's train transform to image files" in proc.stderr
