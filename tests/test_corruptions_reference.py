"""The 15 corruptions against the reference package ``imagecorruptions`` (bethgelab), at 32 px.

robench takes CIFAR-10-C's parameters; ``imagecorruptions`` hard-codes ImageNet-C's. So a corruption
is compared at the severities whose parameter both lists share (contrast, brightness, gaussian and
impulse noise, zoom blur), or through the reference's own parameterised helpers fed CIFAR-10-C's
values (defocus ``disk``, ``plasma_fractal``, ``_motion_blur``), or, where neither exists, through the
reference's code path with its library call (Pillow's JPEG). robench draws from torch generators and
the reference from numpy's global state, so random corruptions are compared by statistics; the fog
fractal is the exception (robench draws it from a numpy Generator, whose stream the reference is fed).
Documented deviations (corruptions.py's docstring) are asserted as deviations. Deviations found here
that are not documented are strict xfails: they fail loudly the day robench follows the reference.
Not compared: snow and elastic_transform (imagecorruptions has no CIFAR-10-C variant of either:
its elastic has no affine part, its snow layer goes through the zoom and motion helpers above).

The reference needs two adjustments to run on today's stack, applied per test: numpy 2 removed
``np.float_`` (used by ``plasma_fractal``) and scikit-image 0.19+ replaced ``multichannel=True`` by
``channel_axis`` (used by ``glass_blur``).
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from robench.threats.image import corruptions as rc

import cv2  # noqa: E402  (a dependency of imagecorruptions)

with warnings.catch_warnings():  # the reference imports pkg_resources and a deprecated scipy path
    warnings.simplefilter("ignore")
    # a test dependency (requirements.lock): missing, this module fails to collect rather than skip
    import imagecorruptions.corruptions as ic


def _images(n: int = 4) -> np.ndarray:
    """Seeded 32x32 RGB uint8 images with smooth regions, sharp edges and texture."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(17)
    out = []
    for _ in range(n):
        img = gaussian_filter(rng.random((32, 32, 3)), sigma=(3, 3, 0)) * 0.6 + 0.2
        r0, c0 = rng.integers(4, 20, 2)
        img[r0:r0 + 10, c0:c0 + 8] = rng.random(3)  # a flat patch with hard edges
        img += 0.05 * rng.standard_normal(img.shape)  # texture
        out.append(np.clip(img * 255, 0, 255).round().astype(np.uint8))
    return np.stack(out)


IMGS = _images()


def _robench(name: str, s: int, imgs: np.ndarray = IMGS, seeds=None) -> np.ndarray:
    x = torch.from_numpy(imgs.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    seeds = list(range(len(imgs))) if seeds is None else seeds
    return rc.corrupt(x, name, s, seeds).numpy().astype(np.float64).transpose(0, 2, 3, 1)


def _reference(fn, s: int, imgs: np.ndarray = IMGS) -> np.ndarray:
    """The reference function itself (not ``corrupt``, whose uint8 cast truncates), in [0, 1]."""
    return np.stack([np.asarray(fn(Image.fromarray(im), s), dtype=np.float64) / 255 for im in imgs])


def _stream(monkeypatch, seed: int) -> None:
    """Feed the reference's ``np.random.uniform`` from the Generator robench's fog would use."""
    g = np.random.default_rng(seed)
    monkeypatch.setattr(np.random, "uniform", lambda low, high, size=None: g.uniform(low, high, size))
    monkeypatch.setattr(np, "float_", np.float64, raising=False)  # removed in numpy 2


# ------------------------------------------------------------------ deterministic: equal within 1e-6

# (robench severity, reference severity) pairs with the same parameter
SHARED_SEVERITY = {
    "contrast": [(3, 1), (4, 2)],  # c = 0.4, 0.3
    "brightness": [(2, 1), (4, 2), (5, 3)],  # c = 0.1, 0.2, 0.3 added to HSV value
}


@pytest.mark.parametrize("name,pairs", SHARED_SEVERITY.items())
def test_pointwise_corruptions_equal_the_reference(name, pairs):
    for ours, theirs in pairs:
        # float32 against float64: 1e-6 is 0.00026 of a grey level
        np.testing.assert_allclose(_robench(name, ours), _reference(getattr(ic, name), theirs), atol=1e-6, rtol=0)


def test_brightness_on_grey_images_equals_the_reference():
    grey = IMGS[..., :1]
    ours = _robench("brightness", 2, grey)[..., 0]
    theirs = np.stack([np.asarray(ic.brightness(Image.fromarray(im[..., 0]), 1)) / 255 for im in grey])
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("s,quality", list(enumerate([80, 65, 58, 50, 40], start=1)))
def test_jpeg_is_the_references_pillow_round_trip(s, quality):
    # the reference's code path (PIL save as JPEG, reopen) at CIFAR-10-C's quality: no quality is shared
    def round_trip(im):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "JPEG", quality=quality)
        return np.asarray(Image.open(buf), dtype=np.float64) / 255

    np.testing.assert_allclose(_robench("jpeg_compression", s), np.stack([round_trip(im) for im in IMGS]), atol=1e-6, rtol=0)


DEFOCUS = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]  # CIFAR-10-C (radius, alias blur)


@pytest.mark.parametrize("s", range(1, 6))
def test_defocus_follows_the_references_disk_kernel(s):
    radius, alias = DEFOCUS[s - 1]
    kernel = ic.disk(radius=radius, alias_blur=alias).astype(np.float64)
    theirs = np.stack([np.stack([cv2.filter2D(im[..., d] / 255.0, -1, kernel) for d in range(3)], -1) for im in IMGS])
    diff = np.abs(_robench("defocus_blur", s) - np.clip(theirs, 0, 1))
    # radius < 1: both are the identity followed by a Gaussian (robench's is untruncated, the
    # reference's 3x3): within 1.5 grey levels. Radius 1 and 1.5: robench's area-weighted disk
    # against the reference's aliased one (not documented): within 10 grey levels, 2.5 on average.
    assert diff.max() < (6e-3 if radius < 1 else 0.04)
    assert diff.mean() < (1e-3 if radius < 1 else 0.01)


# ------------------------------------------------------------------ fog: the same stream

@pytest.mark.parametrize("decay", [3, 2.5, 2, 1.75])
def test_fog_fractal_is_the_references_diamond_square_at_root_decay(decay, monkeypatch):
    ours = rc._plasma(32, decay, np.random.default_rng(5))
    _stream(monkeypatch, 5)
    theirs = ic.plasma_fractal(mapsize=32, wibbledecay=math.sqrt(decay))
    # the reference adds wibble * U(-wibble, wibble) per level, robench U(-wibble, wibble): after
    # normalising, robench at decay d is the reference at decay sqrt(d) (rougher fog)
    np.testing.assert_allclose(ours, theirs, atol=1e-12, rtol=0)


@pytest.mark.xfail(strict=True, reason="found here, not documented: robench's fog fractal uses noise "
                   "amplitude wibble where the reference uses wibble**2 (see the test above)")
def test_fog_fractal_equals_the_reference_at_the_same_decay(monkeypatch):
    ours = rc._plasma(32, 3, np.random.default_rng(5))
    _stream(monkeypatch, 5)
    np.testing.assert_allclose(ours, ic.plasma_fractal(mapsize=32, wibbledecay=3), atol=1e-6, rtol=0)


def test_fog_blend_equals_the_reference_given_the_same_layer(monkeypatch):
    # robench severity 5 and the reference's severity 1 both add amount 1.5 of the fractal
    layers = []
    for sd in range(len(IMGS)):  # the layer robench's fog draws for this seed
        seed = int(torch.randint(0, 2**31 - 1, (), generator=torch.Generator().manual_seed(sd)))
        layers.append(rc._plasma(32, 1.75, np.random.default_rng(seed)))
    it = iter(layers)
    monkeypatch.setattr(ic, "plasma_fractal", lambda mapsize, wibbledecay: next(it))
    np.testing.assert_allclose(_robench("fog", 5), _reference(ic.fog, 1), atol=1e-6, rtol=0)


# ------------------------------------------------------------------ random: by statistics

FLAT = np.full((24, 32, 32, 3), 128, np.uint8)  # mid grey: no clipping, 73,728 values


def test_gaussian_noise_matches_the_reference_in_distribution():
    np.random.seed(0)
    theirs = _reference(ic.gaussian_noise, 1, FLAT) - 128 / 255  # c = 0.08: reference severity 1
    ours = _robench("gaussian_noise", 3, FLAT) - 128 / 255  # and robench severity 3
    for r in (ours, theirs):
        assert abs(r.mean()) < 0.002  # 3 standard errors
        assert r.std() == pytest.approx(0.08, rel=0.015)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)


def test_impulse_noise_matches_the_reference_in_distribution():
    np.random.seed(0)
    theirs = _reference(ic.impulse_noise, 1, FLAT)  # amount 0.03: reference severity 1
    ours = _robench("impulse_noise", 3, FLAT)  # robench severity 3
    for r in (ours, theirs):
        salt, pepper = (r == 1).mean(), (r == 0).mean()
        assert salt + pepper == pytest.approx(0.03, rel=0.05)  # ~3.4 standard errors
        assert salt / (salt + pepper) == pytest.approx(0.5, abs=0.04)
        assert ((r == 0) | (r == 1) | np.isclose(r, 128 / 255)).all()  # each value kept or replaced


def test_shot_noise_is_the_references_poisson_model():
    # no severity shares its photon count (CIFAR-10-C 500..50, ImageNet-C 60..3): compare the model,
    # out = Poisson(x * c) / c: integral counts, variance x / c
    np.random.seed(0)
    x = 128 / 255
    for out, c in ((_reference(ic.shot_noise, 1, FLAT), 60), (_robench("shot_noise", 5, FLAT), 50)):
        counts = out * c
        np.testing.assert_allclose(counts, counts.round(), atol=1e-3)
        assert counts.mean() == pytest.approx(x * c, rel=0.005)
        assert counts.var() == pytest.approx(x * c, rel=0.03)


# ------------------------------------------------------------------ documented deviations

def test_glass_blur_gathers_with_symmetric_offsets_where_the_reference_copies_one_sided(monkeypatch):
    # documented: one gather of random local offsets instead of the reference's sequential swaps.
    # Measured here: on an RGB array the reference's "swap" ``x[h, w], x[h2, w2] = x[h2, w2], x[h, w]``
    # assigns through numpy views, so it copies (the source keeps its value), and randint's open
    # upper bound gives offsets in {-1, 0} only: with the blur removed, every interior pixel of the
    # reference is an input pixel up or left of it. robench's offsets are {-1, 0, 1} in one gather.
    monkeypatch.setattr(ic, "gaussian", lambda x, sigma, multichannel=None: x)
    np.random.seed(0)
    img = np.uint8(IMGS[0] / 255.0 * 255)  # the reference's own uint8 cast truncates a level here and there
    theirs = np.round(np.asarray(ic.glass_blur(Image.fromarray(IMGS[0]), 1))).astype(np.uint8)  # delta 1, 2 passes
    # robench's severity 1: sigma 0.05 (a blur of 1e-87), one pass
    ours = np.round(_robench("glass_blur", 1, IMGS[:1])[0] * 255).astype(np.uint8)
    pixels = lambda a: sorted(map(tuple, a.reshape(-1, 3)))  # noqa: E731
    assert pixels(theirs) != pixels(img) and pixels(ours) != pixels(IMGS[0])  # neither is a permutation

    def sources(out, src, offsets):
        """Per pixel, which offsets (dy, dx) of ``src`` hold the output's value."""
        pad = np.pad(src.astype(int), ((2, 2), (2, 2), (0, 0)), constant_values=-1)
        return {o: (pad[2 + o[0]:34 + o[0], 2 + o[1]:34 + o[1]] == out).all(-1) for o in offsets}

    near = [(dy, dx) for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2)]
    ref = sources(theirs, img, near)
    up_left = [(dy, dx) for dy in (-2, -1, 0) for dx in (-2, -1, 0)]  # two passes of {-1, 0}
    assert np.logical_or.reduce([ref[o] for o in up_left]).all()
    rob = sources(ours, IMGS[0], near)
    assert np.logical_or.reduce([rob[o] for o in near if max(map(abs, o)) <= 1]).all()
    only_down_right = rob[(1, 1)] & ~np.logical_or.reduce([rob[o] for o in up_left])
    assert only_down_right.sum() > 20  # offsets the reference never draws


def test_pixelate_below_32px_uses_whole_blocks_where_the_reference_resizes():
    # 8 px: ImageNet-C's factors give 4, 4, 3, 2, 2 px thumbnails; robench uses blocks of 2, 2, 2, 3, 4
    # (documented): they agree at severities 1, 2, 5 and differ at 3 (3 px thumbnail) and 4 (2 px)
    small = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)  # texture, so block sizes matter
    for s, block in zip(range(1, 6), [2, 2, 2, 3, 4]):
        ours = _robench("pixelate", s, small)
        theirs = _reference(ic.pixelate, s, small)
        x = torch.from_numpy(small.transpose(0, 3, 1, 2).astype(np.float32) / 255)
        means = torch.nn.functional.avg_pool2d(x, block, ceil_mode=True)
        expect = means.repeat_interleave(block, 2).repeat_interleave(block, 3)[..., :8, :8]
        np.testing.assert_allclose(ours, expect.numpy().transpose(0, 2, 3, 1), atol=1e-6)
        if s in (1, 2, 5):  # blocks of 2 (4) px are the reference's 4 (2) px thumbnail: equal up to Pillow's uint8 rounding
            np.testing.assert_allclose(ours, theirs, atol=1 / 255 + 1e-6)
        else:
            assert np.abs(ours - theirs).max() > 0.05


def test_frost_blends_a_grey_procedural_texture_where_the_reference_blends_photographs():
    # both add a layer that does not depend on the image; robench's is grey (one texture on every
    # channel), the reference's frost photographs are tinted (channels differ)
    black = np.zeros((4, 32, 32, 3), np.uint8)
    ours = _robench("frost", 1, black)
    np.testing.assert_allclose(ours, ours[..., :1].repeat(3, -1), atol=1e-7)
    assert ours.mean() > 0.05
    np.random.seed(0)
    theirs = _reference(ic.frost, 1, black)  # 0.4 * frost photograph crop
    assert np.abs(theirs[..., 2] - theirs[..., 0]).mean() > 0.02


@pytest.mark.parametrize("angle", [0.0, 20.0, -30.0])
def test_motion_kernel_is_imagemagicks_with_angles_mirrored(angle):
    # the documented kernel (one-sided Gaussian, ImageMagick's definition; the reference's
    # _motion_blur re-implements ImageMagick's by integer shifts), bilinear splatting instead of
    # shifts; robench measures angles counter-clockwise, ImageMagick clockwise
    x = IMGS[0] / 255.0
    xt = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
    for radius, sigma in [(6, 1), (9, 2.5)]:
        theirs = ic._motion_blur(x, radius=radius, sigma=sigma, angle=angle)
        ours = rc._motion(xt, radius, sigma, [-angle]).numpy()[0].transpose(1, 2, 0)
        change = np.abs(theirs - x).mean()
        # splatting a continuous line against integer taps: measured 0.16-0.52 of the change
        # (closest at large sigma); the angle not mirrored is further off wherever it matters
        assert np.abs(ours - theirs).mean() < 0.6 * change
        if angle:
            unmirrored = rc._motion(xt, radius, sigma, [angle]).numpy()[0].transpose(1, 2, 0)
            assert np.abs(ours - theirs).mean() < np.abs(unmirrored - theirs).mean()


# ------------------------------------------------------------------ found here, not documented

@pytest.mark.xfail(strict=True, reason="found here, not documented: at >= 32 px robench resizes with "
                   "torch 'area' (whole-pixel windows) and 'nearest' (floor), the reference with Pillow's "
                   "BOX (fractional) and NEAREST (pixel centres): mean difference ~0.04")
def test_pixelate_at_32px_equals_the_references_pillow_resizes():
    for s, c in enumerate([0.95, 0.9, 0.85, 0.75, 0.65], start=1):
        n = int(32 * c)
        theirs = np.stack([np.asarray(Image.fromarray(im).resize((n, n), Image.BOX).resize((32, 32), Image.NEAREST),
                                      dtype=np.float64) / 255 for im in IMGS])
        np.testing.assert_allclose(_robench("pixelate", s), theirs, atol=1 / 255)


@pytest.mark.xfail(strict=True, reason="found here, not documented: the reference's clipped_zoom keeps "
                   "the top-left 32 px of a 33 px zoom (off centre), robench zooms about the centre")
def test_zoom_blur_equals_the_reference_at_shared_zooms():
    # robench's severity 2 and the reference's severity 1 average the same zooms, 1.00..1.10
    np.testing.assert_allclose(_robench("zoom_blur", 2), _reference(ic.zoom_blur, 1), atol=2 / 255)


@pytest.mark.xfail(strict=True, reason="found here, not documented: motion_blur passes radius/2 and "
                   "sigma/2 to ImageMagick's kernel, so it blurs about half as far as the reference")
def test_motion_blur_strength_equals_imagemagicks():
    x = IMGS[0] / 255.0
    xt = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
    radius, sigma = 9, 2.5  # CIFAR-10-C severity 5
    theirs = ic._motion_blur(x, radius=radius, sigma=sigma, angle=0.0)
    ours = rc._motion(xt, radius / 2, sigma / 2, [0.0]).numpy()[0].transpose(1, 2, 0)  # as motion_blur calls it
    assert np.abs(ours - theirs).mean() < 0.3 * np.abs(theirs - x).mean()
