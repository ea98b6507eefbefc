"""Corruptions (ImageNet-C, batched, seeded), corruption:name=all with mCE, and robustness curves."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, assert_one_line_error
from robench.data.registry import load_dataset
from robench.threats.image.corruptions import CORRUPTIONS, corrupt

RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog", "elastic_transform"}
# frost keeps the published blend weights: severities 3 and 4 share the ice weight (documented plateau)
PLATEAU = {"frost": 0.05}


def _digits(n=48):
    return load_dataset("digits", "test").inputs[:n]


def _mnist(n=48):
    path = SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip("../shared/data/mnist not present")
    raw = gzip.open(path).read()
    assert int.from_bytes(raw[:4], "big") == 2051  # idx3 magic
    imgs = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    return torch.from_numpy(imgs.astype(np.float32) / 255.0)


@pytest.mark.parametrize("images", [_digits, _mnist], ids=["digits", "mnist"])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_identity_range_and_severity(name, images):
    x = images()
    seeds = list(range(len(x)))
    assert torch.equal(corrupt(x, name, 0, seeds), x)
    change = []
    for s in range(1, 6):
        y = corrupt(x, name, s, seeds)
        assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        change.append(float((y - x).abs().mean()))
    assert min(change) > 1e-3, change  # never a silent no-op
    slack = PLATEAU.get(name, 0.0)
    assert all(b >= a * (1 - slack) for a, b in zip(change, change[1:])), change
    assert change[-1] > change[0], change


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_seeding_and_no_batch_crosstalk(name):
    x = _digits(16)
    seeds = [100 + i for i in range(16)]
    a = corrupt(x, name, 4, seeds)
    assert torch.equal(a, corrupt(x, name, 4, seeds))
    other = corrupt(x, name, 4, [s + 1000 for s in seeds])
    assert (not torch.equal(a, other)) == (name in RANDOM)
    for i in (0, 7, 15):  # the batch gives exactly what one image alone gets
        torch.testing.assert_close(corrupt(x[i : i + 1], name, 4, [seeds[i]]), a[i : i + 1], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_corruption_all_row_and_mce_from_records(tmp_path):
    from robench.engine.evaluate import EvaluateArgs, evaluate

    rows = evaluate(EvaluateArgs(models=["digits-vit-bsa"], baseline="digits-vit-sa", threats=["corruption:name=all"],
                                 num_examples=60, device="cpu", out=tmp_path))
    row = next(r for r in rows if r.model == "digits-vit-bsa" and r.threat == "corruption:name=all")
    assert row.n == 60 and row.paired_p is None and row.paired_test == ""  # pooled outcomes are not independent pairs

    def acc(model, name, s):
        recs = [json.loads(l) for l in (tmp_path / f"{model}__corruption_name={name},severity={s}.jsonl").read_text().splitlines()]
        assert len(recs) == 60
        return sum(r["attacked_pred"] == r["label"] == r["clean_pred"] for r in recs) / 60

    mine = {(c, s): acc("digits-vit-bsa", c, s) for c in CORRUPTIONS for s in range(1, 6)}
    base = {(c, s): acc("digits-vit-sa", c, s) for c in CORRUPTIONS for s in range(1, 6)}
    assert row.attacked_acc == pytest.approx(np.mean(list(mine.values())), abs=1e-6)
    ce = [sum(1 - mine[(c, s)] for s in range(1, 6)) / sum(1 - base[(c, s)] for s in range(1, 6)) for c in CORRUPTIONS]
    assert row.mce == pytest.approx(float(np.mean(ce)), abs=1e-6)


@pytest.mark.slow
def test_corruption_spec_rules(cli):
    from robench.threats.registry import build_threat

    assert build_threat("corruption:name=all").spec == "corruption:name=all"
    assert build_threat("corruption:name=fog,severity=2").spec == "corruption:name=fog,severity=2"
    proc = cli("attack", "digits-vit-sa", "--threat", "corruption:name=frosty", "--device", "cpu")
    assert_one_line_error(proc, "is not one of gaussian_noise, shot_noise")
    proc = cli("evaluate", "digits-vit-sa", "--threat", "corruption:name=all,severity=5", "--device", "cpu")
    assert_one_line_error(proc, "averages severities 1-5; drop the severity parameter")


@pytest.mark.slow
def test_curve_csv_auc_and_plot(cli, tmp_path):
    import matplotlib.image as mpimg

    pts, auc, png = tmp_path / "c.csv", tmp_path / "auc.csv", tmp_path / "c.png"
    proc = cli("curve", "digits-vit-sa", "digits-vit-grc", "--threat", "fgsm", "--sweep", "eps=0,0.05,1/10,0.2",
               "-n", "80", "--device", "cpu", "--csv", str(pts), "--auc-csv", str(auc), "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(pts.open()))
    assert len(rows) == 8
    aucs = {r["model"]: float(r["auc"]) for r in csv.DictReader(auc.open())}
    for model in ("digits-vit-sa", "digits-vit-grc"):
        mine = [r for r in rows if r["model"] == model]
        xs = [build_eps(r["threat"]) for r in mine]
        ys = [float(r["attacked_acc"]) for r in mine]
        assert xs == sorted(xs) == [0.0, 0.05, 0.1, 0.2]
        assert ys[0] == float(mine[0]["clean_acc"])  # eps = 0 changes nothing
        assert all(b <= a + 1e-9 for a, b in zip(ys, ys[1:]))
        assert aucs[model] == pytest.approx(np.trapezoid(ys, xs) / (xs[-1] - xs[0]), abs=1e-6)
        assert f"{100 * aucs[model]:.1f}" in proc.stdout
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def build_eps(spec: str) -> float:
    from robench.threats.registry import build_threat

    return build_threat(spec).eps


@pytest.mark.slow
def test_curve_figure_has_one_line_per_model(tmp_path):
    from robench.engine.curve import CurveArgs, curve
    from robench.report.plots import close, plot_curve

    result = curve(CurveArgs(models=["digits-vit-sa", "digits-vit-bsa", "digits-vit-grc"], threat="corruption:name=contrast",
                             sweep="severity=0,1,3,5", num_examples=40, device="cpu"))
    fig = plot_curve(result, tmp_path / "p.png", "corruption:name=contrast")
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    for line, model in zip(ax.lines, result.auc):
        assert list(line.get_ydata()) == pytest.approx([100 * r.attacked_acc for r in result.points(model)])
    assert ax.get_xlabel() == "severity" and "n=40" in ax.get_title() and "seed 0" in ax.get_title()
    close(fig)


@pytest.mark.parametrize(
    "sweep,fragment",
    [("epsilon=0,1", "has no numeric parameter 'epsilon'"), ("eps=0.1", "at least two distinct values"), ("eps", "expected key=v1,v2")],
)
def test_curve_bad_sweep_exit_2(cli, sweep, fragment):
    proc = cli("curve", "digits-vit-sa", "--threat", "fgsm", "--sweep", sweep, "--device", "cpu")
    assert_one_line_error(proc, fragment)
