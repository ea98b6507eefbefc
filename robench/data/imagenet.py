"""The ImageNet family of benchmarks, each from a local folder (nothing is downloaded).

Sources (``--dataset``):

* ``imagenet:DIR`` -- ImageNet-1k val: ``DIR/SYNSET/*.JPEG``, or a flat ``DIR/*.JPEG`` with a ground
  truth file: ``imagenet:DIR=FILE`` (Kaggle's ``LOC_val_solution.csv``, or lines ``FILENAME LABEL``
  with a synset or a 0-based index in sorted-synset order), found by itself when a
  ``LOC_val_solution.csv`` lies in DIR or up to three folders above it (Kaggle's layout).
* ``imagenet-real:DIR[=JSON]`` -- the same images with ReaL labels (Beyer et al. 2020; default:
  the ``imagenet_real_labels.json`` timm ships): clean rows are re-scored against them.
* ``imagenet-a:DIR``, ``imagenet-r:DIR`` -- 200-class subsets: a 1,000-way model's logits are
  restricted to timm's index lists (``imagenet_a_indices.txt``, ``imagenet_r_indices.txt``), as
  timm's ``validate.py --valid-labels`` does.
* ``imagenet-v2:DIR`` -- class folders named by index ``0..999``; ``imagenet-sketch:DIR`` -- synset folders.
* ``imagenet-c:DIR`` -- ``CORRUPTION/SEVERITY/SYNSET/*.JPEG`` (Hendrycks & Dietterich 2019); one
  dataset part per (corruption, severity) present, plus summary rows with the mCE normalised by
  AlexNet's published errors (:func:`imagenet_c_summaries`). A partial tree is evaluated and its
  summary says which corruptions and severities it covers.

Label order is the sorted synsets (``imagenet_synsets.txt``), as timm's pretrained heads expect.
Any class-per-folder tree whose folders are ImageNet-1k synsets gets that label space too.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
from functools import lru_cache
from pathlib import Path

import torch

from robench.data.base import IMAGE, Dataset, LabelSpace
from robench.data.images import IMAGE_SUFFIXES, class_folders, folder_dataset, list_images
from robench.data.sources import ImageFiles
from robench.errors import RobenchError

IMAGENET_1K = "imagenet-1k"
FAMILY = ("imagenet", "imagenet-real", "imagenet-a", "imagenet-r", "imagenet-v2", "imagenet-sketch", "imagenet-c")

# Hendrycks & Dietterich (2019): AlexNet's top-1 error on ImageNet-C, averaged over severities 1-5,
# for the 15 benchmark corruptions (the constants of the authors' code, hendrycks/robustness).
ALEXNET_ERRORS: dict[str, float] = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
    "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360,
    "snow": 0.866816, "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592,
    "contrast": 0.853204, "elastic_transform": 0.646056, "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")  # in ImageNet-C's tar, not in mCE
SEVERITIES = (1, 2, 3, 4, 5)


def _timm_info(name: str) -> str:
    """A file from timm's bundled ImageNet metadata, read without importing timm (4-5 s)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise RobenchError("the ImageNet label lists come with timm, which is not installed: pip install timm")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise RobenchError(f"timm's {name} was not found at {path}; reinstall timm (>= 1.0)") from None


@lru_cache(maxsize=None)
def synsets() -> tuple[str, ...]:
    """ImageNet-1k's 1,000 synsets in label order (sorted, as timm's pretrained heads)."""
    return tuple(_timm_info("imagenet_synsets.txt").split())


@lru_cache(maxsize=None)
def subset_indices(which: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(synsets, 1k indices) of ImageNet-A (``a``) or ImageNet-R (``r``), from timm's lists."""
    names = tuple(_timm_info(f"imagenet_{which}_synsets.txt").split())
    indices = tuple(int(v) for v in _timm_info(f"imagenet_{which}_indices.txt").split())
    return names, indices


def space_for(labels: list[str]) -> LabelSpace | None:
    """The ImageNet-1k label space of a folder whose classes are 1k synsets (None otherwise).

    Exactly ImageNet-A's or -R's 200 synsets: logits restricted to timm's index list; any other set
    of 1k synsets (all of val, or some of it): targets mapped to the synsets' 1k indices.
    """
    try:
        names = synsets()
    except RobenchError:
        return None
    index = {s: i for i, s in enumerate(names)}
    if not labels or not all(c in index for c in labels):
        return None
    for which in ("a", "r"):
        sub, idx = subset_indices(which)
        if list(labels) == list(sub):
            return LabelSpace(IMAGENET_1K, names, idx, restrict=True)
    return LabelSpace(IMAGENET_1K, names, tuple(index[c] for c in labels))


def with_label_space(ds: Dataset) -> Dataset:
    """``ds`` with its ImageNet-1k label space when its labels are synsets (else unchanged)."""
    space = space_for(ds.labels)
    if space is not None:
        ds.label_space = space
    return ds


def split_source(name: str) -> tuple[str, str, str] | None:
    """``imagenet-a:DIR`` -> ``("imagenet-a", "DIR", "")``; ``imagenet:DIR=FILE`` -> (..., "FILE"); else None."""
    kind, sep, rest = name.partition(":")
    if not sep or kind not in FAMILY or not rest:
        return None
    path, _, extra = rest.partition("=")
    return kind, path, extra


def load_imagenet(name: str) -> list[Dataset]:
    """The dataset(s) of an ImageNet-family source (ImageNet-C: one per corruption and severity)."""
    kind, path, extra = split_source(name)
    root = Path(path)
    if not root.is_dir():
        raise RobenchError(f"{kind}: folder {root} not found; give the folder that holds the images")
    if kind == "imagenet-c":
        return imagenet_c_parts(root, name)
    if kind in ("imagenet-a", "imagenet-r"):
        sub, idx = subset_indices(kind[-1])
        ds = folder_dataset(root, classes=list(sub), name=name, split="test")
        ds.label_space = LabelSpace(IMAGENET_1K, synsets(), idx, restrict=True)
        return [ds]
    if kind == "imagenet-v2":
        return [imagenet_v2(root, name)]
    ds = imagenet_val(root, extra if kind == "imagenet" else "", name)
    if kind == "imagenet-real":
        ds.real_labels = real_labels(ds, Path(extra) if extra else None)
    return [ds]


def _one_k(ds: Dataset) -> Dataset:
    ds.label_space = LabelSpace(IMAGENET_1K, synsets(), tuple(range(1000)))
    return ds


def imagenet_val(root: Path, truth: str, name: str) -> Dataset:
    """ImageNet-1k val: synset folders, or a flat folder with a ground-truth file."""
    names = synsets()
    if class_folders(root):
        ds = folder_dataset(root, classes=list(names), name=name, split="val")
        return _one_k(ds)
    truth_path = Path(truth) if truth else _find_solution(root)
    if truth_path is None:
        raise RobenchError(f"imagenet:{root} holds no synset folders and no ground truth was found; give it as "
                           f"imagenet:{root}=LOC_val_solution.csv (or a 'FILENAME LABEL' file), or sort the images into synset folders")
    files = list_images(root)
    if not files:
        raise RobenchError(f"imagenet:{root} holds no {', '.join(IMAGE_SUFFIXES)} files")
    labels = _ground_truth(truth_path, names)
    kept, targets, missing = [], [], []
    for f in files:
        key = Path(f).stem
        if key in labels:
            kept.append(f)
            targets.append(labels[key])
        else:
            missing.append(f)
    if missing:
        raise RobenchError(f"imagenet:{root}: {len(missing)} image(s) have no label in {truth_path} (e.g. {missing[0]}); "
                           "give the ground truth of these images")
    ds = Dataset(name=name, task=IMAGE, split="val", labels=list(names), inputs=ImageFiles(str(root), tuple(kept)),
                 targets=torch.tensor(targets, dtype=torch.long), ids=list(range(len(kept))), sha256="")
    return _one_k(ds)


def _find_solution(root: Path) -> Path | None:
    here = root.resolve()
    for d in [here, *list(here.parents)[:3]]:
        if (d / "LOC_val_solution.csv").is_file():
            return d / "LOC_val_solution.csv"
    return None


def _ground_truth(path: Path, names: tuple[str, ...]) -> dict[str, int]:
    """image stem -> 1k index, from LOC_val_solution.csv or ``FILENAME LABEL`` lines."""
    index = {s: i for i, s in enumerate(names)}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise RobenchError(f"ground-truth file {path} cannot be read ({e.strerror})") from None
    out: dict[str, int] = {}
    if text.startswith("ImageId"):  # Kaggle: ImageId,PredictionString ("n01751748 x y x y ...")
        for row in csv.DictReader(io.StringIO(text)):
            syn = (row.get("PredictionString") or "").split()[:1]
            if not syn or syn[0] not in index:
                raise RobenchError(f"{path}: row {row.get('ImageId')!r} has no ImageNet-1k synset")
            out[row["ImageId"]] = index[syn[0]]
        return out
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise RobenchError(f"{path} line {n}: expected 'FILENAME LABEL', got {line[:60]!r}")
        file, label = parts
        if label in index:
            out[Path(file).stem] = index[label]
        elif label.isdigit() and int(label) < len(names):
            out[Path(file).stem] = int(label)
        else:
            raise RobenchError(f"{path} line {n}: label {label!r} is neither a synset nor an index 0..999")
    return out


_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d{8})")


def real_labels(ds: Dataset, path: Path | None) -> list[tuple[str, ...]]:
    """ReaL label sets per example (as synsets), matched by the val image number in each file name."""
    if path is None:
        text, where = _timm_info("imagenet_real_labels.json"), "timm's imagenet_real_labels.json"
    else:
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except OSError as e:
            raise RobenchError(f"ReaL labels file {path} cannot be read ({e.strerror})") from None
    try:
        table = json.loads(text)
    except ValueError as e:
        raise RobenchError(f"ReaL labels file {where} is not JSON ({e})") from None
    if not isinstance(table, list):
        raise RobenchError(f"ReaL labels file {where} must hold a list (one list of class indices per val image)")
    names = synsets()
    out = []
    for i in range(len(ds)):
        m = _VAL_NUMBER.search(os.path.basename(ds.inputs.where(i)))
        if m is None or not 1 <= int(m.group(1)) <= len(table):
            raise RobenchError(f"imagenet-real: {ds.inputs.where(i)} is not an ImageNet val file name "
                               "(ILSVRC2012_val_NNNNNNNN.JPEG); ReaL labels are keyed by it")
        try:
            out.append(tuple(names[int(v)] for v in table[int(m.group(1)) - 1]))
        except (TypeError, ValueError, IndexError):
            raise RobenchError(f"ReaL labels file {where}: entry {m.group(1)} is not a list of class indices 0..999") from None
    return out


def imagenet_v2(root: Path, name: str) -> Dataset:
    """ImageNet-V2: class folders named by their 1k index (``0`` .. ``999``)."""
    folders = class_folders(root)
    bad = [f for f in folders if not (f.isdigit() and int(f) < 1000)]
    if bad or not folders:
        raise RobenchError(f"imagenet-v2:{root}: expected class folders 0..999, found {', '.join((bad or ['none'])[:3])}")
    ds = folder_dataset(root, classes=[str(i) for i in range(1000)], name=name, split="test")
    ds.labels = list(synsets())
    return _one_k(ds)


def _corruption_order(name: str) -> tuple[int, str]:
    names = [*ALEXNET_ERRORS, *EXTRA_CORRUPTIONS]
    return (names.index(name), name) if name in names else (len(names), name)


def imagenet_c_parts(root: Path, name: str) -> list[Dataset]:
    """One lazy dataset per ``CORRUPTION/SEVERITY`` folder present (``part`` = ``"fog/3"``)."""
    parts = []
    known = [*ALEXNET_ERRORS, *EXTRA_CORRUPTIONS]
    unknown = [c for c in class_folders(root) if c not in known]
    if unknown:
        raise RobenchError(f"imagenet-c:{root}: {', '.join(unknown[:3])} {'is' if len(unknown) == 1 else 'are'} not ImageNet-C "
                           f"corruption folder(s) ({', '.join(known[:3])}, ...); move them out of the tree")
    for corruption in sorted(class_folders(root), key=_corruption_order):
        for severity in class_folders(root / corruption):
            if severity not in ("1", "2", "3", "4", "5"):
                raise RobenchError(f"imagenet-c:{root}: {corruption}/{severity} is not a severity folder (1..5)")
            ds = folder_dataset(root / corruption / severity, classes=list(synsets()), name=name,
                                split=f"{corruption}/{severity}")
            ds.part = f"{corruption}/{severity}"
            parts.append(_one_k(ds))
    if not parts:
        raise RobenchError(f"imagenet-c:{root} holds no CORRUPTION/SEVERITY/SYNSET folders")
    return parts


def imagenet_c_coverage(parts: list[str]) -> tuple[str, list[str]]:
    """A label for the parts evaluated (``"15/15 corruptions x 5 severities"`` or which are missing)
    and the mCE corruptions that are complete (all five severities)."""
    have: dict[str, set[int]] = {}
    for p in parts:
        c, s = p.split("/")
        have.setdefault(c, set()).add(int(s))
    complete = [c for c in ALEXNET_ERRORS if have.get(c) == set(SEVERITIES)]
    if len(complete) == len(ALEXNET_ERRORS):  # (the folders are all ImageNet-C's: imagenet_c_parts checks)
        extra = [c for c in have if c not in ALEXNET_ERRORS]
        return "all 15 corruptions x 5 severities" + (f" (+ {len(extra)} extra)" if extra else ""), complete
    partial = [f"{c} {','.join(map(str, sorted(s)))}" for c, s in have.items() if s != set(SEVERITIES)]
    label = f"partial: {len(complete)} of 15 corruptions complete"
    if partial:
        label += f"; incomplete: {'; '.join(partial[:4])}{' ...' if len(partial) > 4 else ''}"
    return label, complete


def mean_corruption_error(accuracy: dict[str, float]) -> float | None:
    """mCE (Hendrycks & Dietterich 2019): the mean over corruptions of ``err / AlexNet's err``, where
    ``accuracy[c]`` is the accuracy on corruption ``c`` averaged over severities 1-5 (so the
    ratio of means equals the paper's ratio of sums over severities). Only corruptions with
    AlexNet constants count; None when none is given."""
    ratios = [(1 - a) / ALEXNET_ERRORS[c] for c, a in accuracy.items() if c in ALEXNET_ERRORS]
    return sum(ratios) / len(ratios) if ratios else None

