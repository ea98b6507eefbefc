"""The ImageNet family from local folders: ImageNet-C summaries and mCE, flat val with a ground-truth
file, label spaces; checked against hand computations with the published constants."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from robench.data.imagenet import ALEXNET_ERRORS, mean_corruption_error, subset_indices, synsets
from robench.data.registry import load_dataset, load_datasets
from test_streaming import card_copy


def test_alexnet_constants_and_mce_formula():
    """The 15 constants of Hendrycks & Dietterich's code, and mCE = mean of err / AlexNet err."""
    assert len(ALEXNET_ERRORS) == 15
    assert ALEXNET_ERRORS["gaussian_noise"] == 0.886428 and ALEXNET_ERRORS["jpeg_compression"] == 0.6065
    acc = {"gaussian_noise": 0.3, "fog": 0.6, "speckle_noise": 0.9}  # speckle: no AlexNet constant, not counted
    assert mean_corruption_error(acc) == pytest.approx(((1 - 0.3) / 0.886428 + (1 - 0.6) / 0.819324) / 2, abs=1e-12)


def test_imagenet_a_r_index_lists_are_timms():
    names = synsets()
    for which in ("a", "r"):
        sub, idx = subset_indices(which)
        assert len(sub) == len(idx) == 200 and [names[i] for i in idx] == list(sub)


def _imagenet_c_tree(root, seed=0):
    """digits images corrupted by robench's own corruptions at each severity, saved losslessly as
    CORRUPTION/SEVERITY/SYNSET/*.png; gaussian_noise and fog complete, contrast at severities 1, 2."""
    from PIL import Image

    from robench.threats.image.corruptions import corrupt

    ds = load_dataset("digits", "test")
    idx = torch.arange(0, 60)
    x, y = ds.inputs[idx], ds.targets[idx]
    names = synsets()[:10]
    plan = [("gaussian_noise", s) for s in range(1, 6)] + [("fog", s) for s in range(1, 6)] + [("contrast", 1), ("contrast", 2)]
    for c, s in plan:
        xc = corrupt(x, c, s, [seed + i for i in range(len(x))])
        for i in range(len(x)):
            d = root / c / str(s) / names[int(y[i])]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray((xc[i, 0].numpy() * 255).round().astype(np.uint8), "L").save(d / f"{i:03d}.png")
    return plan


@pytest.mark.slow
def test_imagenet_c_rows_and_mce_equal_a_hand_computation(tmp_path, cli):
    from PIL import Image

    from robench.models.loading import load_model

    plan = _imagenet_c_tree(tmp_path / "c")
    names = list(synsets()[:10])
    weights = card_copy(tmp_path, "digits-vit-sa", labels=names)  # the digits model, classes named by 10 synsets
    proc = cli("evaluate", str(weights), "--dataset", f"imagenet-c:{tmp_path / 'c'}", "--suite", "clean",
               "--device", "cpu", "--json", str(tmp_path / "rows.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    parts = {r["split"]: r for r in rows if "/" in r["split"]}
    assert sorted(parts) == sorted(f"{c}/{s}" for c, s in plan)
    # hand: decode each part's files with PIL, predict with the model, accuracy per part
    module = load_model(str(weights)).module
    acc = {}
    for c, s in plan:
        files = sorted((tmp_path / "c" / c / str(s)).glob("*/*.png"))
        x = torch.stack([torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32) / 255)[None] for f in files])
        y = torch.tensor([names.index(f.parent.name) for f in files])
        with torch.inference_mode():
            acc[(c, s)] = int((module(x).argmax(-1) == y).sum()) / len(y)
        assert parts[f"{c}/{s}"]["clean_acc"] == round(acc[(c, s)], 6)
    mean = {c: sum(acc[(c, s)] for s in range(1, 6)) / 5 for c in ("gaussian_noise", "fog")}
    by_split = {r["split"]: r for r in rows if "/" not in r["split"]}
    for c in ("gaussian_noise", "fog"):
        assert by_split[c]["mce"] == round((1 - mean[c]) / ALEXNET_ERRORS[c], 6)
        assert by_split[c]["n"] == 60
    assert by_split["contrast"]["mce"] is None  # two of five severities: no CE
    (overall_split,) = [k for k in by_split if k not in ("gaussian_noise", "fog", "contrast")]
    assert overall_split == "partial: 2 of 15 corruptions complete; incomplete: contrast 1,2"
    overall = by_split[overall_split]
    hand = ((1 - mean["gaussian_noise"]) / 0.886428 + (1 - mean["fog"]) / 0.819324) / 2
    assert overall["mce"] == round(hand, 6)
    assert overall["clean_acc"] == round(sum(acc.values()) / len(acc), 6)  # equal n per part: pooled = mean
    # the leaderboard shows the tree in one table (not 15)
    proc = cli("leaderboard", str(tmp_path / "rows.json"))
    assert proc.returncode == 0 and proc.stdout.count("robench leaderboard") == 1 and "mCE" in proc.stdout


def test_flat_val_with_kaggle_solution_file(tmp_path):
    """A flat folder of val JPEGs with LOC_val_solution.csv (found one folder up, Kaggle's layout)."""
    from imagetrees import make_tree

    names = synsets()
    files = make_tree(tmp_path / "tmp", [names[3], names[700]], 2, seed=8,
                      name=lambda c, k: f"ILSVRC2012_val_{names.index(c) + k + 1:08d}")
    flat = tmp_path / "ILSVRC" / "val"
    flat.mkdir(parents=True)
    lines = ["ImageId,PredictionString"]
    for f in files:
        f.rename(flat / f.name)
        lines.append(f"{f.stem},{f.parent.name} 1 2 3 4")
    (tmp_path / "ILSVRC" / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    (ds,) = load_datasets(f"imagenet:{flat}")
    assert len(ds) == 4 and ds.labels == list(names)
    assert sorted(ds.targets.tolist()) == [3, 3, 700, 700]
    by_file = dict(zip(ds.inputs.paths, ds.targets.tolist()))
    assert all(by_file[f.name] == names.index(f.parent.name) for f in files)


def test_model_head_matching_no_label_set_is_one_line(tmp_path, cli):
    from imagetrees import make_tree

    r_names, _ = subset_indices("r")
    make_tree(tmp_path / "r", list(r_names[:2]), 1, seed=9)
    proc = cli("evaluate", "digits-vit-sa", "--dataset", f"imagenet-r:{tmp_path / 'r'}", "--device", "cpu")
    assert_one_line_error(proc, "has 10 labels but dataset imagenet-r:")
    assert "imagenet-1k's 1000 classes" in proc.stderr
