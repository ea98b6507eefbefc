"""Training robench's models with timm's training pieces (``robench.timm_train``, torchrun) and
reading timm train.py checkpoints (``*.pth.tar``: state_dict, state_dict_ema, args) back safely."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from robench.errors import RobenchError
from robench.models.loading import load_model

timm = pytest.importorskip("timm")
from timm.utils import CheckpointSaver, ModelEmaV3  # noqa: E402

import robench.models.timm_models  # noqa: E402,F401

FIXTURE = REPO / "tests" / "timm_train_fixture.py"
TINY = {"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 3, "embed_dim": 16, "depth": 1, "num_heads": 2}


def _saved_checkpoint(out: Path, ema: bool = True) -> tuple[torch.nn.Module, torch.nn.Module | None, Path]:
    """A timm train.py checkpoint as CheckpointSaver writes it, of a model moved off its init."""
    torch.manual_seed(0)
    out.mkdir(exist_ok=True)
    model = timm.create_model("robench_vit_sa", **TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model_ema = ModelEmaV3(model, decay=0.5) if ema else None
    for _ in range(3):
        loss = model(torch.rand(4, 1, 8, 8)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if model_ema is not None:
            model_ema.update(model)
    args = argparse.Namespace(model="robench_vit_sa", lr=0.5, input_size=None, mean=None, model_kwargs={}, drop=0.0)
    saver = CheckpointSaver(model, opt, args=args, model_ema=model_ema, checkpoint_dir=str(out), recovery_dir=str(out))
    saver.save_checkpoint(0, metric=1.0)
    return model.eval(), (model_ema.module.eval() if model_ema else None), out / "model_best.pth.tar"


def test_train_py_checkpoint_loads_weights_only_with_its_namespace(tmp_path):
    model, ema, ckpt = _saved_checkpoint(tmp_path)
    raw = torch.load(ckpt, weights_only=False)  # our own file: the reference may unpickle it fully
    assert isinstance(raw["args"], argparse.Namespace) and {"state_dict", "state_dict_ema", "optimizer"} <= set(raw)
    args = {k: v for k, v in TINY.items() if k != "num_classes"}
    x = torch.rand(5, 1, 8, 8)
    plain = load_model(f"timm:robench_vit_sa={ckpt}", labels=list("abc"), model_args=args)
    averaged = load_model(f"timm:robench_vit_sa={ckpt}", labels=list("abc"), model_args=args, use_ema=True)
    m, s = plain.module.mean, plain.module.std
    with torch.no_grad():
        assert torch.equal(plain.module(x), model((x - m) / s))
        assert torch.equal(averaged.module(x), ema((x - m) / s))
        assert not torch.equal(model((x - m) / s), ema((x - m) / s))  # EMA weights are other weights
    _, _, no_ema = _saved_checkpoint(tmp_path / "no-ema", ema=False)
    with pytest.raises(RobenchError, match="holds no state_dict_ema .* drop --use-ema"):
        load_model(f"timm:robench_vit_sa={no_ema}", labels=list("abc"), model_args=args, use_ema=True)


class Unlisted:  # any class but argparse.Namespace: weights_only refuses it
    pass


def test_a_checkpoint_with_other_objects_is_still_refused(tmp_path):
    path = tmp_path / "odd.pth.tar"
    torch.save({"state_dict": {"w": torch.ones(1)}, "args": argparse.Namespace(x=Unlisted())}, path)
    with pytest.raises(RobenchError, match="refusing to load .* it needs arbitrary unpickling"):
        load_model(f"timm:robench_vit_sa={path}", labels=[str(i) for i in range(10)])


def test_timm_train_entry_point_refuses_a_missing_script(capsys):
    from robench.timm_train import main

    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("usage: python -m robench.timm_train PATH/TO/train.py")
    with pytest.raises(SystemExit) as e:
        main(["no/such/train.py", "--model", "x"])
    assert e.value.code == 2 and "no/such/train.py is not a file; give timm's train.py" in capsys.readouterr().err


def _image_folder(root: Path, classes: int = 4, per_class: int = 12) -> list[tuple[Path, int]]:
    """32 x 32 PNGs, one colour per class under heavy noise (learnable, not trivially)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, size=(classes, 3))
    files = []
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(colours[c][None, None, :] + rng.normal(0, 70, (32, 32, 3)), 0, 255).astype("uint8")
            path = root / f"c{c}" / f"{i}.png"
            Image.fromarray(pixels).save(path)
            files.append((path, c))
    return files


@pytest.mark.slow
def test_torchrun_two_ranks_trains_a_registered_model_and_robench_evaluates_its_checkpoint(tmp_path):
    """torchrun -m robench.timm_train runs a train.py-equivalent script (timm's public pieces, DDP on
    gloo) on robench_deit_tiny_sa_patch4_32; its model_best.pth.tar evaluates in robench with the
    logits and accuracy of an independent reference (timm's model + the checkpoint, a loop here)."""
    files = _image_folder(tmp_path / "data")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "robench.timm_train",
           str(FIXTURE), "--data-dir", str(tmp_path / "data"), "--model", "robench_deit_tiny_sa_patch4_32",
           "--model-kwargs", "depth=2", "--num-classes", "4", "--epochs", "2", "--batch-size", "8", "--model-ema",
           "--output", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(line.split(" epoch")[0] for line in proc.stdout.splitlines() if " epoch 1 " in line) == ["rank 0", "rank 1"]
    assert {p.name for p in out.iterdir()} == {"checkpoint-0.pth.tar", "checkpoint-1.pth.tar", "last.pth.tar", "model_best.pth.tar"}
    ckpt = out / "model_best.pth.tar"

    raw = torch.load(ckpt, weights_only=False)  # the reference: our own file, read with timm's model
    assert raw["arch"] == "robench_deit_tiny_sa_patch4_32" and raw["args"].world_size == 2
    ref = timm.create_model("robench_deit_tiny_sa_patch4_32", num_classes=4, depth=2)
    ref.load_state_dict(raw["state_dict"])
    ref.eval()
    cfg = timm.data.resolve_data_config({}, model=ref)
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    from PIL import Image

    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255 for p, _ in files])
    y = torch.tensor([c for _, c in files])
    spec = f"timm:robench_deit_tiny_sa_patch4_32={ckpt}"
    loaded = load_model(spec, labels=["c0", "c1", "c2", "c3"], model_args={"depth": 2})
    with torch.no_grad():
        expected = ref((x - mean) / std)
        assert torch.equal(loaded.module(x), expected)
    reference_acc = float((expected.argmax(1) == y).float().mean())

    rows = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", "robench", "evaluate", spec, "--model-arg", "depth=2", "--dataset",
                           str(tmp_path / "data"), "--suite", "clean", "--json", str(rows), "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(rows.read_text())
    assert row["n"] == 48 and row["clean_acc"] == pytest.approx(reference_acc, abs=1e-12)
    proc = subprocess.run([sys.executable, "-m", "robench", "evaluate", spec, "--model-arg", "depth=2", "--dataset",
                           str(tmp_path / "data"), "--use-ema", "--suite", "clean", "--json", "-"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ema = timm.create_model("robench_deit_tiny_sa_patch4_32", num_classes=4, depth=2)
    ema.load_state_dict(raw["state_dict_ema"])
    with torch.no_grad():
        ema_acc = float((ema.eval()((x - mean) / std).argmax(1) == y).float().mean())
    assert json.loads(proc.stdout)[0]["clean_acc"] == pytest.approx(ema_acc, abs=1e-12)


def test_use_ema_needs_a_checkpoint():
    with pytest.raises(RobenchError, match="--use-ema: timm:robench_vit_sa names no checkpoint"):
        load_model("timm:robench_vit_sa", labels=[str(i) for i in range(10)], use_ema=True)
