"""One robench attention layer as a denoiser over the samples of a signal (samples as tokens).

Token ``i`` is the ``patch`` values around sample ``i`` (``patch`` samples in 1-D, ``patch x patch``
in 2-D; borders edge-padded), its position the sample's integer coordinates. The denoised sample is
the centre channel of the layer's output. The layer is :class:`robench.models.attention.Attention`:

- ``identity`` (the paper's Theorem III.1 reading): ``W_Q = W_K = W_V = W_O = I``, no biases, so
  SA is ``softmax_j(x_i.x_j / sqrt(P))`` and BSA ``softmax_j(-||x_i - x_j||^2/h_y - ||p_i - p_j||^2/h_p)``
  (``P`` = values per token) applied to the centre values; BSA's fixed ``h_y``, ``h_p`` come from a grid.
- ``learned``: the same layer as the starting point, then every projection (BSA: and its two
  bandwidths) fitted by Adam. SA sees its position as ``P + D`` token features: the values and
  the coordinates scaled to [-1, 1] (a linear position embedding its projections may use).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from robench.models.attention import Attention
from robench.models.positions import TokenPositions


def patches(x: Tensor, patch: int) -> Tensor:
    """``(B, *shape)`` -> ``(B, N, P)``: each sample's edge-padded neighbourhood, row-major."""
    r = patch // 2
    if x.dim() == 2:
        xp = torch.nn.functional.pad(x[:, None], (r, r), mode="replicate")[:, 0]
        return xp.unfold(1, patch, 1)
    xp = torch.nn.functional.pad(x[:, None], (r, r, r, r), mode="replicate")[:, 0]
    b, h, w = x.shape
    return xp.unfold(1, patch, 1).unfold(2, patch, 1).reshape(b, h * w, patch * patch)


def coords(shape: tuple[int, ...]) -> Tensor:
    """Integer coordinates ``(N, D)`` of the samples of a signal of ``shape``, row-major."""
    grids = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], -1)


class AttentionDenoiser(nn.Module):
    """SA or BSA (one head) over the samples of signals of ``shape``; see the module docstring."""

    def __init__(self, kind: str, shape: tuple[int, ...], patch: int, *, h_y: float = 1.0, h_p: float = 1.0,
                 learned: bool = False) -> None:
        super().__init__()
        self.kind, self.shape, self.patch = kind, tuple(shape), patch
        self.p = patch ** len(shape)
        self.with_coords = kind == "sa" and learned
        dim = self.p + (len(shape) if self.with_coords else 0)
        self.attn = Attention(dim, 1, kind, hp_init=h_p, hy_init=h_y, learn_bandwidths=learned).double()
        with torch.no_grad():
            eye = torch.eye(dim, dtype=torch.float64)
            self.attn.qkv.weight.copy_(torch.cat([eye, eye, eye]))
            self.attn.qkv.bias.zero_()
            self.attn.proj.weight.copy_(eye)
            self.attn.proj.bias.zero_()
            # the bandwidths were initialised in fp32; set them exactly in fp64
            for name, h in (("log_hy", h_y), ("log_hp", h_p)):
                if hasattr(self.attn, name):
                    getattr(self.attn, name).fill_(math.log(h))
        if not learned:
            self.attn.requires_grad_(False)
        c = coords(self.shape)
        self.positions = TokenPositions(c)
        half = torch.tensor([max(n - 1, 1) / 2 for n in self.shape], dtype=torch.float64)
        self.register_buffer("unit_coords", (c.double() - half) / half, persistent=False)

    def forward(self, noisy: Tensor) -> Tensor:
        """Denoise ``(B, *shape)`` fp64 signals."""
        b = noisy.shape[0]
        tokens = patches(noisy, self.patch)
        if self.with_coords:
            tokens = torch.cat([tokens, self.unit_coords.expand(b, -1, -1)], -1)
        pos = self.positions(tokens.shape[1], torch.float64) if self.kind == "bsa" else None
        out = self.attn(tokens, pos=pos)
        return out[..., self.p // 2].reshape(b, *self.shape)

    def bandwidths(self) -> str:
        """``h_y=..;h_p=..`` (BSA) or ``-`` (SA), for the results file."""
        if self.kind != "bsa":
            return "-"
        hy, hp = (float(t[0].detach()) for t in self.attn.bandwidths())
        return f"h_y={hy:.4g};h_p={hp:.4g}"


def fit(model: AttentionDenoiser, clean: np.ndarray, sigma: float, steps: int, lr: float, seed: int,
        batch: int) -> float:
    """Adam on ``steps`` minibatches of ``batch`` training signals, fresh seeded noise each step (MSE).

    Returns the last step's loss.
    """
    gen = torch.Generator().manual_seed(seed)
    target = torch.from_numpy(clean)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss = torch.tensor(math.nan)
    for _ in range(steps):
        idx = torch.randperm(len(target), generator=gen)[:batch]
        y = target[idx]
        x = y + sigma * torch.randn(y.shape, generator=gen, dtype=torch.float64)
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def denoise(model: AttentionDenoiser, noisy: np.ndarray) -> np.ndarray:
    """The model's output on ``noisy`` ``(B, *shape)``, as numpy."""
    with torch.no_grad():
        return model(torch.from_numpy(noisy)).numpy()
