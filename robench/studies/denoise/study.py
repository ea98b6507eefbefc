"""The kernel-ablation study: per (signal kind, noise level, method, seed), the error on test signals.

Per seed and kind: ``n_train`` training and ``n_test`` test signals (independent seeded streams).
Every parameter is chosen on the training signals only, per noise level, by the smallest mean
squared error: the bilateral filter's ``sigma_color x sigma_spatial`` grid, NL-means' ``h x patch
size x search distance`` grid, BSA's identity-projection bandwidths (the bilateral grid read as
``h_y = 2 P sigma_color^2``, ``h_p = 2 sigma_spatial^2``, ``P`` values per token); the learned layers
start from the identity layer (BSA: its grid bandwidths) and run ``steps`` Adam steps. The test
signals are then denoised once with the chosen parameters.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from robench.argspec import option
from robench.errors import RobenchError
from robench.studies.denoise.filters import bilateral, nl_means
from robench.studies.denoise.layer import AttentionDenoiser, denoise, fit
from robench.studies.denoise.signals import KINDS, add_noise, clean_signals

METHODS = ("noisy", "sa-identity", "bsa-identity", "sa-learned", "bsa-learned", "bilateral", "nl-means")
SIGMA_COLOR = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
SIGMA_SPATIAL = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
# (sigma_color, sigma_spatial) candidates, shared by the bilateral filter and BSA-identity's bandwidths
BILATERAL_GRID = tuple(itertools.product(SIGMA_COLOR, SIGMA_SPATIAL))
NLM_H = (0.4, 0.6, 0.8, 1.0, 1.2, 1.6, 2.0)  # times the noise sigma
NLM_PATCH = ((3, 3), (5, 6), (7, 8))  # (patch size, search distance)


@dataclass
class DenoiseArgs:
    """Options of ``python -m robench.studies.denoise``."""

    out: str = option(None, "--out", help="folder for results.csv and summary.md", cli_required=True)
    seeds: str = option("0,1,2", "--seeds", help="comma-separated seeds (signals, noise, training)")
    sigmas: str = option("0.05,0.1,0.2,0.3", "--sigmas", help="comma-separated noise standard deviations")
    kinds: str = option("1d,2d", "--kinds", help="signal kinds: 1d (length --size-1d), 2d (--size-2d squared)")
    size_1d: int = option(256, "--size-1d", help="length of the 1-D signals")
    size_2d: int = option(32, "--size-2d", help="side of the 2-D signals")
    n_train: int = option(16, "--n-train", help="training signals per seed and kind (grids and Adam)")
    n_test: int = option(8, "--n-test", help="held-out test signals per seed and kind")
    patch: int = option(3, "--patch", help="values per token per axis (odd): patch or patch x patch")
    steps: int = option(300, "--steps", help="Adam steps of the learned layers")
    batch: int = option(4, "--batch", help="training signals per Adam step")
    lr: float = option(0.01, "--lr", help="Adam learning rate")


@dataclass
class DenoiseRow:
    """One (signal kind, noise sigma, method, seed): the mean squared error over the test signals."""

    signal: str
    sigma: float
    method: str
    seed: int
    n_test: int
    mse: float
    psnr: float
    params: str


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


def _best(candidates, train_clean: np.ndarray, train_noisy: np.ndarray, apply):
    """The candidate with the smallest training MSE (the first on ties)."""
    scores = [_mse(apply(c, train_noisy), train_clean) for c in candidates]
    return candidates[int(np.argmin(scores))]


def _each(f):
    return lambda c, xs: np.stack([f(c, x) for x in xs])


def _methods(args: DenoiseArgs, kind: str, sigma: float, seed: int, tr: np.ndarray, tr_noisy: np.ndarray):
    """``{method: (denoise function of test signals, params string)}`` fitted on the training set."""
    shape = tr.shape[1:]
    p = args.patch ** len(shape)
    bil = _best(BILATERAL_GRID, tr, tr_noisy,
                lambda c, xs: bilateral(xs, *c, batch_dims=1))
    nlm = _best([(h * sigma, ps, pd) for h in NLM_H for ps, pd in NLM_PATCH], tr, tr_noisy,
                _each(lambda c, x: nl_means(x, *c, sigma=sigma)))

    def layer(kind_, c, learned=False):
        return AttentionDenoiser(kind_, shape, args.patch, h_y=2 * p * c[0] ** 2, h_p=2 * c[1] ** 2, learned=learned)

    bsa_c = _best(BILATERAL_GRID, tr, tr_noisy,
                  lambda c, xs: denoise(layer("bsa", c), xs))
    out = {
        "noisy": (lambda xs: xs, "-"),
        "bilateral": (lambda xs: bilateral(xs, *bil, batch_dims=1), f"sigma_color={bil[0]:g};sigma_spatial={bil[1]:g}"),
        "nl-means": (lambda xs: np.stack([nl_means(x, *nlm, sigma=sigma) for x in xs]),
                     f"h={nlm[0]:.4g};patch_size={nlm[1]};patch_distance={nlm[2]}"),
    }
    sa, bsa = layer("sa", (1.0, 1.0)), layer("bsa", bsa_c)
    out["sa-identity"] = (lambda xs: denoise(sa, xs), sa.bandwidths())
    out["bsa-identity"] = (lambda xs: denoise(bsa, xs), bsa.bandwidths())
    for i, kind_ in enumerate(("sa", "bsa")):
        m = layer(kind_, bsa_c, learned=True)
        fit(m, tr, sigma, args.steps, args.lr, seed=1000 * seed + 10 * KINDS.index(kind) + i, batch=args.batch)
        out[f"{kind_}-learned"] = ((lambda mm: lambda xs: denoise(mm, xs))(m), m.bandwidths())
    return out


def _numbers(text: str, kind: type, flag: str) -> list:
    try:
        return [kind(s) for s in text.split(",")]
    except ValueError:
        raise RobenchError(f"{flag} {text!r} is not a comma-separated list of {kind.__name__}s, e.g. "
                           f"{'0,1,2' if kind is int else '0.1,0.2'}") from None


def check(args: DenoiseArgs) -> tuple[list[int], list[float], list[str]]:
    """The parsed ``(seeds, sigmas, kinds)``; one-line :class:`RobenchError` for any bad option."""
    seeds, sigmas = _numbers(args.seeds, int, "--seeds"), _numbers(args.sigmas, float, "--sigmas")
    kinds = args.kinds.split(",")
    if any(k not in KINDS for k in kinds):
        raise RobenchError(f"--kinds {args.kinds!r}: each kind must be one of {', '.join(KINDS)}")
    if any(not 0 < s < 10 for s in sigmas) or any(s < 0 for s in seeds):
        raise RobenchError("--sigmas must be in (0, 10) and --seeds non-negative")
    if args.patch < 1 or args.patch % 2 == 0:
        raise RobenchError(f"--patch {args.patch}: give an odd number of values per axis (1, 3, 5, ...)")
    if args.size_1d < 24 or args.size_2d < 4:
        raise RobenchError("--size-1d must be at least 24 and --size-2d at least 4")
    if args.n_train < 1 or args.n_test < 1 or not 1 <= args.batch <= args.n_train or args.steps < 0:
        raise RobenchError("--n-train and --n-test must be >= 1, --batch in 1..--n-train, --steps >= 0")
    return seeds, sigmas, kinds


def run(args: DenoiseArgs) -> list[DenoiseRow]:
    """Every (kind, sigma, method, seed) row of the study, in that nesting order."""
    seeds, sigmas, kinds = check(args)
    rows = []
    for kind in kinds:
        size = args.size_1d if kind == "1d" else args.size_2d
        for sigma in sigmas:
            for seed in seeds:
                tr = clean_signals(kind, "train", seed, args.n_train, size)
                te = clean_signals(kind, "test", seed, args.n_test, size)
                tr_noisy, te_noisy = add_noise(tr, sigma, seed, kind, "train"), add_noise(te, sigma, seed, kind, "test")
                methods = _methods(args, kind, sigma, seed, tr, tr_noisy)
                for name in METHODS:
                    f, params = methods[name]
                    mse = _mse(f(te_noisy), te)
                    rows.append(DenoiseRow(kind, sigma, name, seed, args.n_test, mse, 10 * math.log10(1 / mse), params))
    return rows
