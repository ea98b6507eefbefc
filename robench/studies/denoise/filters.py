"""The classical references: the bilateral filter (direct) and non-local means (scikit-image).

The bilateral filter is computed directly rather than with ``skimage.restoration.denoise_bilateral``:
scikit-image 0.26's spatial lookup table is built on ``win_size + 1`` grid points but read with a
stride of ``win_size``, so its spatial weights are not the Gaussian of the offset (the tests show
both facts). Here the window is ``|offset| <= radius`` per axis and is clipped at the borders
(pixels outside the signal are absent, not padded), which makes the filter with an unbounded
window exactly BSA's kernel on single values (``h_y = 2 sigma_color^2``, ``h_p = 2 sigma_spatial^2``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def bilateral(x: np.ndarray, sigma_color: float, sigma_spatial: float, radius: int | None = None,
              batch_dims: int = 0) -> np.ndarray:
    """Tomasi-Manduchi bilateral filter of a 1-D or 2-D array ``x`` (after ``batch_dims`` leading axes).

    ``out_i = sum_j w_ij x_j / sum_j w_ij``, ``w_ij = exp(-|x_i - x_j|^2 / (2 sigma_color^2)
    - ||i - j||^2 / (2 sigma_spatial^2))`` over the ``j`` inside the signal with every
    ``|i_a - j_a| <= radius`` (default ``ceil(3 sigma_spatial)``).
    """
    r = math.ceil(3 * sigma_spatial) if radius is None else radius
    shape = x.shape[batch_dims:]
    lead = (slice(None),) * batch_dims
    num, den = np.zeros_like(x, dtype=np.float64), np.zeros_like(x, dtype=np.float64)
    for off in itertools.product(range(-r, r + 1), repeat=len(shape)):
        if any(abs(o) >= n for o, n in zip(off, shape)):
            continue
        dst = lead + tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, shape))
        src = lead + tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, shape))
        nb = x[src]
        w = np.exp(-((nb - x[dst]) ** 2) / (2 * sigma_color**2) - sum(o * o for o in off) / (2 * sigma_spatial**2))
        num[dst] += w * nb
        den[dst] += w
    return num / den


def nl_means(x: np.ndarray, h: float, patch_size: int, patch_distance: int, sigma: float) -> np.ndarray:
    """``skimage.restoration.denoise_nl_means`` (fast mode, noise ``sigma`` given) of a 1-D or 2-D array.

    A 1-D signal goes in as a one-row image (skimage pads it by reflection, so the rows above and
    below repeat the signal).
    """
    from skimage.restoration import denoise_nl_means

    img = x[None] if x.ndim == 1 else x
    out = denoise_nl_means(img, patch_size=patch_size, patch_distance=patch_distance, h=h,
                           sigma=sigma, fast_mode=True, channel_axis=None)
    return np.asarray(out).reshape(x.shape)
