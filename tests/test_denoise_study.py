"""The denoising kernel ablation (robench/studies/denoise/): references against literal loops, the
attention layers against their kernel formulas, seeded signals, and a tiny end-to-end run."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from robench.studies.denoise.__main__ import main
from robench.studies.denoise.filters import bilateral
from robench.studies.denoise.layer import AttentionDenoiser, denoise
from robench.studies.denoise.report import read_rows, summary_md
from robench.studies.denoise.signals import add_noise, clean_signals
from robench.studies.denoise.study import METHODS


def _loop_bilateral(x, sc, ss, r):
    """The textbook filter, one pixel and one neighbour at a time, window clipped at the borders."""
    h, w = x.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            num = den = 0.0
            for a in range(max(0, i - r), min(h, i + r + 1)):
                for b in range(max(0, j - r), min(w, j + r + 1)):
                    wt = math.exp(-(x[a, b] - x[i, j]) ** 2 / (2 * sc * sc) - ((a - i) ** 2 + (b - j) ** 2) / (2 * ss * ss))
                    num += wt * x[a, b]
                    den += wt
            out[i, j] = num / den
    return out


def _small_image():
    x = clean_signals("2d", "test", 3, 1, 10)[0][:7, :9]
    return add_noise(x, 0.1, 3, "2d", "test")


@pytest.mark.parametrize("sc,ss", [(0.15, 1.5), (0.3, 1.0), (0.05, 3.0)])
def test_bilateral_equals_a_literal_loop(sc, ss):
    x = _small_image()
    np.testing.assert_allclose(bilateral(x, sc, ss), _loop_bilateral(x, sc, ss, math.ceil(3 * ss)), rtol=0, atol=1e-12)
    # batched: each image filtered on its own
    both = bilateral(np.stack([x, x[::-1].copy()]), sc, ss, batch_dims=1)
    np.testing.assert_allclose(both[1], bilateral(x[::-1].copy(), sc, ss), rtol=0, atol=1e-15)
    # 1-D: a one-row image
    row = x[2]
    np.testing.assert_allclose(bilateral(row, sc, ss), _loop_bilateral(row[None], sc, ss, math.ceil(3 * ss))[0],
                               rtol=0, atol=1e-12)


def test_skimage_bilateral_is_not_the_textbook_filter():
    """Why the study does not use skimage's denoise_bilateral: with mode='edge' it equals the loop
    whose spatial weight for offset (a, b) is entry (a + r) * win + (b + r) of a Gaussian table built
    on win + 1 points per axis (its lookup table), not the Gaussian of (a, b). If this fails,
    scikit-image changed that table; compare again and consider using it."""
    from skimage.restoration import denoise_bilateral

    x, sc, ss = _small_image(), 0.2, 1.5
    win = 2 * math.ceil(3 * ss) + 1
    r = win // 2
    g = np.arange(-win // 2, win // 2 + 1)
    lut = np.exp(-0.5 * (g[:, None] ** 2 + g[None, :] ** 2) / ss**2).ravel()
    xp = np.pad(x, r, mode="edge")
    table, textbook = np.zeros_like(x), np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            nb = xp[i : i + win, j : j + win]
            color = np.exp(-((nb - x[i, j]) ** 2) / (2 * sc * sc))
            sp = lut[(np.arange(win)[:, None] * win + np.arange(win)[None, :])]
            table[i, j] = (sp * color * nb).sum() / (sp * color).sum()
            sp = np.exp(-((np.arange(win)[:, None] - r) ** 2 + (np.arange(win)[None, :] - r) ** 2) / (2 * ss * ss))
            textbook[i, j] = (sp * color * nb).sum() / (sp * color).sum()
    sk = denoise_bilateral(x - x.min(), sigma_color=sc, sigma_spatial=ss, mode="edge") + x.min()
    assert np.abs(sk - table).max() < 1e-3  # its 10,000-bin colour table
    assert np.abs(sk - textbook).max() > 0.05


def test_bsa_identity_on_single_values_is_the_bilateral_filter_with_an_unbounded_window():
    x, sc, ss = _small_image(), 0.2, 1.5
    layer = AttentionDenoiser("bsa", x.shape, 1, h_y=2 * sc**2, h_p=2 * ss**2)
    np.testing.assert_allclose(denoise(layer, x[None])[0], bilateral(x, sc, ss, radius=20), rtol=0, atol=1e-12)


def _tokens_1d(x, patch):
    r = patch // 2
    xp = np.concatenate([[x[0]] * r, x, [x[-1]] * r])
    return np.stack([xp[i : i + patch] for i in range(len(x))])


@pytest.mark.parametrize("kind", ["sa", "bsa"])
def test_identity_layers_equal_their_kernel_formula_1d(kind):
    x = add_noise(clean_signals("1d", "test", 1, 1, 24), 0.2, 1, "1d", "test")[0]
    t, hy, hp = _tokens_1d(x, 3), 0.3, 20.0
    pos = np.arange(len(x), dtype=float)
    if kind == "bsa":
        logits = -((t[:, None] - t[None]) ** 2).sum(-1) / hy - (pos[:, None] - pos[None]) ** 2 / hp
    else:
        logits = t @ t.T / math.sqrt(3)
    w = np.exp(logits - logits.max(1, keepdims=True))
    want = (w @ x) / w.sum(1)
    layer = AttentionDenoiser(kind, x.shape, 3, h_y=hy, h_p=hp)
    np.testing.assert_allclose(denoise(layer, x[None])[0], want, rtol=0, atol=1e-12)


def test_bsa_identity_equals_its_kernel_formula_2d():
    x, hy, hp = _small_image(), 0.5, 3.0
    xp = np.pad(x, 1, mode="edge")
    h, w = x.shape
    t = np.stack([xp[i : i + 3, j : j + 3].ravel() for i in range(h) for j in range(w)])
    p = np.array([(i, j) for i in range(h) for j in range(w)], dtype=float)
    logits = -((t[:, None] - t[None]) ** 2).sum(-1) / hy - ((p[:, None] - p[None]) ** 2).sum(-1) / hp
    wt = np.exp(logits - logits.max(1, keepdims=True))
    want = ((wt @ x.ravel()) / wt.sum(1)).reshape(h, w)
    np.testing.assert_allclose(denoise(AttentionDenoiser("bsa", x.shape, 3, h_y=hy, h_p=hp), x[None])[0], want,
                               rtol=0, atol=1e-12)


def test_learned_sa_starts_from_the_identity_layer_on_values_and_coordinates():
    x = add_noise(clean_signals("1d", "test", 2, 1, 24), 0.1, 2, "1d", "test")[0]
    u = (np.arange(24) - 11.5) / 11.5
    t = np.concatenate([_tokens_1d(x, 3), u[:, None]], 1)
    logits = t @ t.T / 2.0  # sqrt(3 values + 1 coordinate)
    wt = np.exp(logits - logits.max(1, keepdims=True))
    layer = AttentionDenoiser("sa", x.shape, 3, learned=True)
    assert all(p.requires_grad for p in layer.parameters())
    np.testing.assert_allclose(denoise(layer, x[None])[0], (wt @ x) / wt.sum(1), rtol=0, atol=1e-12)
    bsa = AttentionDenoiser("bsa", x.shape, 3, h_y=0.3, h_p=4.0, learned=True)
    assert {n for n, p in bsa.named_parameters()} >= {"attn.log_hy", "attn.log_hp", "attn.qkv.weight"}
    assert not any(p.requires_grad for p in AttentionDenoiser("bsa", x.shape, 3).parameters())


@pytest.mark.parametrize("kind,size", [("1d", 64), ("2d", 16)])
def test_signals_are_seeded(kind, size):
    a, b = clean_signals(kind, "train", 5, 3, size), clean_signals(kind, "train", 5, 3, size)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == (3,) + (size,) * int(kind[0])
    assert not np.array_equal(a, clean_signals(kind, "train", 6, 3, size))
    assert not np.array_equal(a, clean_signals(kind, "test", 5, 3, size))
    np.testing.assert_array_equal(add_noise(a, 0.1, 5, kind, "train"), add_noise(b, 0.1, 5, kind, "train"))
    assert not np.array_equal(add_noise(a, 0.1, 5, kind, "train"), add_noise(a, 0.1, 6, kind, "train"))
    big = clean_signals(kind, "test", 0, 20, size)
    assert abs(np.std(add_noise(big, 0.2, 0, kind, "test") - big) - 0.2) < 0.01


def test_tiny_run_writes_the_csv_and_its_summary(tmp_path):
    torch.set_num_threads(1)
    main(["--out", str(tmp_path), "--seeds", "0,1", "--sigmas", "0.1", "--size-1d", "32", "--size-2d", "8",
          "--n-train", "2", "--n-test", "2", "--steps", "2", "--batch", "2"])
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
        assert f.seek(0) == 0 and f.readline() == "signal,sigma,method,seed,n_test,mse,psnr,params\n"
    assert len(rows) == 2 * 1 * len(METHODS) * 2
    assert {(r["signal"], r["method"], r["seed"]) for r in rows} == {
        (k, m, s) for k in ("1d", "2d") for m in METHODS for s in ("0", "1")}
    for r in rows:
        assert float(r["psnr"]) == pytest.approx(10 * math.log10(1 / float(r["mse"])), abs=1e-3)
    noisy = [float(r["mse"]) for r in rows if r["method"] == "noisy"]
    assert all(0.005 < m < 0.02 for m in noisy)  # sigma^2 = 0.01
    assert [r["params"].split("=")[0] for r in rows if r["method"] == "bilateral"] == ["sigma_color"] * 4
    assert (tmp_path / "summary.md").read_text() == summary_md(read_rows(tmp_path / "results.csv"))
    assert "| 0.1 | " in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("argv,fragment", [
    (["--kinds", "3d"], "each kind must be one of 1d, 2d"),
    (["--patch", "2"], "give an odd number"),
    (["--sigmas", "0.1,x"], "not a comma-separated list of floats"),
    (["--seeds", "0.5"], "not a comma-separated list of ints"),
    (["--sigmas", "0"], "--sigmas must be in (0, 10)"),
    (["--batch", "9", "--n-train", "4"], "--batch in 1..--n-train"),
    (["--size-1d", "10"], "--size-1d must be at least 24"),
])
def test_bad_options_are_one_line_exit_2_and_write_nothing(argv, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "o"), *argv])
    assert e.value.code == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith("robench: error: ") and fragment in err[0], err
    assert not (tmp_path / "o").exists()
