"""Image files decoded on demand, through the model's own preprocessing (robench.data.loader).

References: timm's own pipeline (create_dataset / create_transform / DataLoader, as its
validate.py), hand-written loops over PIL, and files that would fail if they were ever opened.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import REPO, assert_one_line_error
from imagetrees import make_tree
from robench.data.imagenet import subset_indices, synsets
from robench.data.registry import load_dataset
from robench.results.records import read_records
from robench.results.store import records_path

ZOO = REPO / "models"


def card_copy(tmp: Path, name: str, **changes) -> Path:
    """A copy of a zoo checkpoint whose card has ``changes`` merged into its preprocessing
    (``labels=[...]`` replaces the label names); returns the weights path."""
    card = json.loads((ZOO / f"{name}.json").read_text())
    if "labels" in changes:
        card["labels"] = changes.pop("labels")
    card["preprocessing"].update(changes)
    card["evaluation"] = {}
    shutil.copy(ZOO / f"{name}.safetensors", tmp / f"{name}.safetensors")
    (tmp / f"{name}.json").write_text(json.dumps(card))
    return tmp / f"{name}.safetensors"


def clean_records(out: Path, model: str, part: str = ""):
    from robench.results.store import record_key

    return read_records(records_path(out, record_key(model, part), "none"))


def hand_predictions(net, files, transform, mode: str) -> torch.Tensor:
    """Logits of ``net`` on each file, decoded by PIL and transformed one at a time."""
    from PIL import Image

    with torch.inference_mode():
        return torch.cat([net(transform(Image.open(f).convert(mode))[None]) for f in files])


@pytest.mark.slow
def test_robench_card_with_resize_and_crop_matches_timm_transform(tmp_path, cli):
    """A robench card with crop_pct/interpolation gets exactly timm's eval transform on mixed-size files."""
    from timm.data import create_transform

    from robench.models.loading import load_model

    classes = [str(i) for i in range(10)]
    make_tree(tmp_path / "imgs", classes, 3, seed=1)
    weights = card_copy(tmp_path, "digits-vit-sa", crop_pct=0.875, interpolation="bicubic")
    out = tmp_path / "out"
    proc = cli("evaluate", str(weights), "--dataset", str(tmp_path / "imgs"), "--suite", "clean", "--out", str(out),
               "--device", "cpu", "--workers", "2", "--json", str(tmp_path / "rows.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["preprocessing"] == "resize 9 bicubic, center crop 8 (crop_pct 0.875), grayscale"
    recs = clean_records(out, "digits-vit-sa")
    ds = load_dataset(str(tmp_path / "imgs"))
    files = [tmp_path / "imgs" / p for p in ds.inputs.paths]
    card = json.loads(weights.with_suffix(".json").read_text())["preprocessing"]
    tf = create_transform(input_size=(1, 8, 8), is_training=False, crop_pct=0.875, interpolation="bicubic",
                          mean=card["mean"], std=card["std"])  # normalisation inside timm's transform here
    net = load_model(str(weights)).module.net
    logits = hand_predictions(net, files, tf, "L")
    assert [r.clean_pred for r in recs] == logits.argmax(-1).tolist()
    assert [r.clean_top5 for r in recs] == logits.topk(5).indices.tolist()
    assert [r.label for r in recs] == ds.targets.tolist()


@pytest.mark.slow
def test_timm_model_sees_what_timm_validate_feeds_it(tmp_path, cli):
    """Per-example top-1 and top-5 of robench equal timm's own create_dataset/create_transform/DataLoader
    loop on a mixed-size synset tree (random weights, saved so both sides use the same ones); the
    ImageNet-A/R logit restriction equals timm's index lists; ReaL equals a direct computation."""
    import timm
    from safetensors.torch import save_file
    from timm.data import create_dataset, create_transform, resolve_data_config

    names = synsets()
    classes = [names[i] for i in (1, 500, 999)]
    make_tree(tmp_path / "val", classes, 4, seed=2, name=lambda c, k: f"ILSVRC2012_val_{names.index(c) * 10 + k + 1:08d}")
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", num_classes=1000).eval()
    weights = tmp_path / "w.safetensors"
    save_file(net.state_dict(), str(weights))
    spec = f"timm:vit_tiny_patch16_224={weights}"

    cfg = resolve_data_config({}, model=net, use_test_size=True)
    tds = create_dataset("", root=str(tmp_path / "val"), split="validation")
    tds.transform = create_transform(**cfg, is_training=False)
    loader = torch.utils.data.DataLoader(tds, batch_size=8)
    with torch.inference_mode():
        logits = torch.cat([net(x) for x, _ in loader])
    timm_targets = [t for _, t in tds.reader.samples]

    out = tmp_path / "out"
    proc = cli("evaluate", spec, "--dataset", str(tmp_path / "val"), "--suite", "clean", "--batch-size", "8",
               "--out", str(out), "--device", "cpu", "--json", str(tmp_path / "rows.json"))
    assert proc.returncode == 0, proc.stderr
    recs = clean_records(out, spec)
    ds = load_dataset(str(tmp_path / "val"))
    assert [str(tmp_path / "val" / p) for p in ds.inputs.paths] == [f for f, _ in tds.reader.samples]
    assert [r.clean_pred for r in recs] == logits.argmax(-1).tolist()
    assert [r.clean_top5 for r in recs] == logits.topk(5).indices.tolist()
    # targets: each synset's index among ImageNet-1k's 1000 (timm's folder indices are 0..2 here)
    assert [r.label for r in recs] == [names.index(classes[t]) for t in timm_targets]
    row = json.loads((tmp_path / "rows.json").read_text())[0]
    assert row["preprocessing"] == "resize 248 bicubic, center crop 224 (crop_pct 0.9), RGB"
    top5 = sum(r.label in r.clean_top5 for r in recs) / len(recs)
    assert row["clean_top5"] == round(top5, 6)

    # ImageNet-R: the same images under three of R's synsets; logits restricted to timm's list
    r_names, r_idx = subset_indices("r")
    rdir = tmp_path / "r"
    for c, new in zip(classes, r_names[:3]):
        shutil.copytree(tmp_path / "val" / c, rdir / new)
    out_r = tmp_path / "out-r"
    proc = cli("evaluate", spec, "--dataset", f"imagenet-r:{rdir}", "--suite", "clean", "--batch-size", "8",
               "--out", str(out_r), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    recs_r = clean_records(out_r, spec)
    assert [r.clean_pred for r in recs_r] == logits[:, list(r_idx)].argmax(-1).tolist()
    assert [r.label for r in recs_r] == [t for t in timm_targets]  # positions among R's 200 synsets

    # ReaL: label sets built from the model's own predictions (every other image gets its top-1)
    real = [[] for _ in range(10_000)]
    for f, r in zip(ds.inputs.paths, recs):
        number = int(Path(f).stem.split("_")[-1])
        real[number - 1] = [r.clean_pred] if number % 2 else [(r.clean_pred + 1) % 1000, r.clean_top5[4]]
    real[int(Path(ds.inputs.paths[0]).stem.split("_")[-1]) - 1] = []  # no ReaL labels: left out
    (tmp_path / "real.json").write_text(json.dumps(real))
    proc = cli("evaluate", spec, "--dataset", f"imagenet-real:{tmp_path / 'val'}={tmp_path / 'real.json'}", "--suite",
               "clean", "--batch-size", "8", "--device", "cpu", "--json", str(tmp_path / "real-rows.json"))
    assert proc.returncode == 0, proc.stderr
    real_row = [r for r in json.loads((tmp_path / "real-rows.json").read_text()) if r["dataset"].endswith("(ReaL)")][0]
    scored = [(r, set(real[int(Path(f).stem.split("_")[-1]) - 1])) for f, r in zip(ds.inputs.paths, recs)]
    scored = [(r, s) for r, s in scored if s]
    assert real_row["n"] == len(scored) == len(recs) - 1
    assert real_row["clean_acc"] == round(sum(r.clean_pred in s for r, s in scored) / len(scored), 6)
    assert real_row["clean_top5"] == round(sum(bool(s & set(r.clean_top5)) for r, s in scored) / len(scored), 6)


@pytest.mark.slow
def test_only_sampled_files_are_opened(tmp_path, cli):
    """-n draws its sample from the labels alone: every other file is garbage, and the run works;
    a sample that includes a garbage file fails naming it."""
    from robench.data.base import stratified_sample

    classes = [str(i) for i in range(10)]
    make_tree(tmp_path / "imgs", classes, 4, seed=3)
    ds = load_dataset(str(tmp_path / "imgs"))
    keep = set(stratified_sample(ds.targets, 10, 0))
    for p, rel in enumerate(ds.inputs.paths):
        if p not in keep:
            (tmp_path / "imgs" / rel).write_bytes(b"not an image")
    args = ("evaluate", "digits-vit-sa", "--dataset", str(tmp_path / "imgs"), "-n", "10", "--device", "cpu",
            "--threat", "fgsm:eps=0.1")
    proc = cli(*args, "--seed", "0", "--json", str(tmp_path / "rows.json"))
    assert proc.returncode == 0, proc.stderr
    assert {r["n"] for r in json.loads((tmp_path / "rows.json").read_text())} == {10}
    other = sorted(set(stratified_sample(ds.targets, 10, 1)) - keep)[0]
    proc = cli(*args, "--seed", "1", "--csv", str(tmp_path / "x.csv"))
    assert_one_line_error(proc, f"image {tmp_path / 'imgs' / ds.inputs.paths[other]} cannot be decoded")
    assert not (tmp_path / "x.csv").exists()


def test_dataset_identity_follows_the_used_files(tmp_path):
    """dataset_sha256 changes when a sampled file is rewritten, not when an unsampled one is."""
    import os

    from robench.engine.jobs import select_examples

    make_tree(tmp_path / "imgs", [str(i) for i in range(10)], 3, seed=4)

    def sample_sha() -> str:
        return select_examples(load_dataset(str(tmp_path / "imgs")), 10, 0).identity()

    before = sample_sha()
    ds = load_dataset(str(tmp_path / "imgs"))
    sampled = select_examples(ds, 10, 0).inputs.paths
    unsampled = [p for p in ds.inputs.paths if p not in sampled]
    path = tmp_path / "imgs" / unsampled[0]
    path.write_bytes(path.read_bytes() + b"\0")
    assert sample_sha() == before
    path = tmp_path / "imgs" / sampled[0]
    st = path.stat()
    path.write_bytes(path.read_bytes()[::-1][::-1])  # same bytes, rewritten: a new modification time
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    after = sample_sha()
    assert after != before
    # the labels are part of the identity: the same files under other names are other data
    relabelled = select_examples(load_dataset(str(tmp_path / "imgs")), 10, 0)
    relabelled.labels, relabelled.sha256 = [f"c{c}" for c in relabelled.labels], ""
    assert relabelled.identity() != after


@pytest.mark.slow
def test_corrupt_image_is_one_line_and_skip_unreadable_records_it(tmp_path, cli):
    """A truncated JPEG: one line naming it, exit 2, no export; --skip-unreadable leaves it out and
    lists it in run.json, and the other examples' records are those of a run without it."""
    files = make_tree(tmp_path / "imgs", [str(i) for i in range(10)], 3, seed=5)
    jpg = next(f for f in files if f.suffix == ".jpg")
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    args = ("evaluate", "digits-vit-sa", "--dataset", str(tmp_path / "imgs"), "--device", "cpu", "--threat", "fgsm:eps=0.1")
    proc = cli(*args, "--csv", str(tmp_path / "x.csv"))
    assert_one_line_error(proc, f"image {jpg} cannot be decoded")
    assert "--skip-unreadable" in proc.stderr and not (tmp_path / "x.csv").exists()
    out = tmp_path / "out"
    proc = cli(*args, "--skip-unreadable", "--out", str(out), "--json", str(tmp_path / "rows.json"))
    assert proc.returncode == 0, proc.stderr
    assert "1 unreadable image(s) left out" in proc.stderr
    run = json.loads((out / "run.json").read_text())
    (skipped,) = run["skipped_unreadable"].values()
    assert len(skipped) == 1 and skipped[0].startswith(str(jpg))
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {r["n"] for r in rows} == {len(files) - 1}
    # the same run resumes (the skip list is not part of the config hash)
    again = cli(*args, "--skip-unreadable", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stderr


def test_image_table_of_paths(tmp_path):
    """A CSV of image paths (relative to the table) and string labels: lazy, names sorted naturally."""
    files = make_tree(tmp_path / "imgs", ["cat", "dog"], 2, seed=6)
    lines = ["image,label"] + [f"{f.relative_to(tmp_path)},{f.parent.name}" for f in files]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path / "t.csv"))
    assert ds.lazy and ds.labels == ["cat", "dog"] and ds.targets.tolist() == [0, 0, 1, 1]
    assert [ds.inputs.where(i) for i in range(4)] == [str(f) for f in files]


def test_arrow_image_dataset_stays_memory_mapped(tmp_path):
    """A save_to_disk dataset with an Image feature: rows decoded on demand, equal to the files."""
    import datasets

    from robench.data.loader import Feed
    from robench.data.preprocess import Preprocessing

    files = make_tree(tmp_path / "imgs", [str(i) for i in range(3)], 2, seed=7)
    table = datasets.Dataset.from_dict({"image": [str(f) for f in files], "label": [int(f.parent.name) for f in files]})
    table = table.cast_column("image", datasets.Image())
    table.save_to_disk(str(tmp_path / "arrow"))
    ds = load_dataset(str(tmp_path / "arrow"))
    assert ds.lazy and len(ds) == len(files)
    pre = Preprocessing(channels=3, size=(16, 16), crop_pct=0.875, interpolation="bicubic")
    from_arrow = Feed(pre, torch.device("cpu")).tensor(ds)
    from_files = Feed(pre, torch.device("cpu")).tensor(load_dataset(str(tmp_path / "imgs")))
    assert torch.equal(from_arrow, from_files)
