"""Self-attention: standard softmax attention (SA) and Bilateral Self-Attention (BSA).

BSA (docs/models.md) weighs token j for query i with a bilateral-filter kernel, the product of
a content (range) kernel and a position (spatial) kernel::

    A_ij = softmax_j( -||q_i - k_j||^2 / h_y  -  ||p_i - p_j||^2 / h_p )

``h_y`` and ``h_p`` are learnable per head, kept positive by an exp parameterisation. Prefix tokens
(CLS) have no position: their row and column of the spatial term are 0.

**One SDPA call, no bias.** Every term of the logit is a dot product once the row constants
(``-||q_i||^2 / h_y`` and ``-||p_i||^2 / h_p``, which cancel in the softmax) are dropped::

    -||q_i - k_j||^2 / h_y  =  (2 / h_y) q_i.k_j  -  ||k_j||^2 / h_y              + row const
    -||p_i - p_j||^2 / h_p  =  (2 / h_p) p_i.p_j  -  ||p_j||^2 / h_p              + row const

so BSA is ``scaled_dot_product_attention(q_aug, k_aug, v_aug, scale=1)`` with ``E`` extra dimensions
appended to every head (``m_i`` is 1 for a position token, 0 for a prefix token, whose ``p`` is 0)::

    q_aug_i = [ (2/h_y) q_i,  (2/h_p) p_i,  1,                         m_i,            ||p_i||^2/h_p ]
    k_aug_j = [ k_j,          p_j,          -||k_j||^2/h_y,            -||p_j||^2/h_p,  1 - m_j       ]
    v_aug_j = [ v_j,          0, ...                                                                ]

``q_aug_i . k_aug_j`` is the BSA logit plus ``||p_i||^2/h_p`` for a position query (the same for all
its keys, a prefix key included: it gets ``0 + ||p_i||^2/h_p`` from the last slot) and exactly the
content logit for a prefix query. Without prefix tokens the last two slots merge into the
``-||k_j||^2/h_y - ||p_j||^2/h_p`` slot (``E = P + 1`` instead of ``P + 3``, P = position dims).
Zero dims pad the width to a multiple of 4 (CPU) or 8 (CUDA, what the fused kernels want); ``v`` is
zero-padded to the same width because the flash kernels need equal q/k/v head dims, and the zero
output columns meet zero columns of the output projection. This beats the textbook "scaled query plus
an additive bias": no ``(B, H, N, N)`` bias is built, so the flash / memory-efficient kernels run and
memory stays O(N d); padding and causal masks go to SDPA as a boolean mask or ``is_causal``. The
per-model position features (:class:`TokenPositions`) are built once per sequence length and shared
by every layer and head; each layer only scales them by its per-head ``1/h_p``.

The augmentation is computed in fp32 (fp64 for fp64 inputs). It cancels large numbers when
``R = max_i ||p_i||^2 / h_p`` is large (positions are centred to keep it small; ``R < 1.5`` at init
for both model families), so a layer falls back to the exact bias path when ``R * eps`` would exceed
``SPATIAL_TOL`` (see there). No ``N x N x d`` tensor is formed on either path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robench.models.positions import BSAPositions, TokenPositions, pairwise_sq_dist  # noqa: F401 (re-exported)
from robench.models.relpos import alibi_bias, alibi_slopes, apply_rope, rope_tables

# Fallback threshold of the expansion. The spatial part of an expanded logit adds terms of size up
# to 2R, R and R (R = max ||p_i||^2 / h_p over centred positions) to reach a value of size <= R;
# rounding them costs about 4 R eps absolute on the logit, which is a relative error of that size
# on the attention weights. The tests hold the fast path to the direct formula within 1e-5, so
# we require 4 R eps <= 1e-5, i.e. R eps <= 2.5e-6: R <= 21 in fp32 (eps = 2^-23), 14x the init
# value, so h_p may shrink 14x during training before a layer falls back to the exact bias path.
# (Measured in fp32: the output error against an fp64 reference grows as ~6e-8 R, 1.3e-6 at the
# limit; the bound is conservative.) In fp64 the limit is astronomically far; in fp16/bf16 the
# augmented q/k are rounded to that dtype like q.k itself is, and the fp32 limit still applies.
SPATIAL_TOL = 2.5e-6


def build_attn_mask(
    key_padding_mask: Tensor | None, causal: bool, n: int, device: torch.device
) -> Tensor | None:
    """Boolean mask (True = may attend), broadcastable to ``(B, H, N, N)``, or None."""
    mask = None
    if key_padding_mask is not None:
        mask = key_padding_mask[:, None, None, :].to(torch.bool)
    if causal:
        tri = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        mask = tri if mask is None else (mask & tri)
    return mask


def _sdpa(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool, **kw) -> Tensor:
    """SDPA with a boolean padding mask and/or causal mask (``is_causal`` alone when no padding)."""
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **kw)
    mask = build_attn_mask(key_padding_mask, causal, q.shape[-2], q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)


class _AugmentQKV(torch.autograd.Function):
    """``qkv`` ``(B, N, 3, H, d)`` -> ``q_aug, k_aug, v_aug`` ``(B, N, H, width)`` (module docstring).

    ``q_extra``/``k_extra`` ``(N, H, E)`` hold the position slots (the key-norm slot of ``k_extra``
    holds its position part); the key norm ``-||k_j||^2 / h_y`` is added into slot ``knorm_slot``
    here. A Function rather than ``torch.cat`` so that ``qkv`` is not kept for the key norm's
    backward (``k`` is read back from ``k_aug``, which SDPA keeps anyway): the layer saves no more
    than SA's activations plus the extra columns.
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, q_extra: Tensor, k_extra: Tensor, inv_hy: Tensor, knorm_slot: int, width: int):
        b, n, _, h, d = qkv.shape
        e = q_extra.shape[-1]
        out = []
        for i, extra in enumerate((q_extra, k_extra, None)):
            t = qkv.new_empty(b, n, h, width)
            t[..., :d] = qkv[:, :, i]
            t[..., d:] = 0 if extra is None else F.pad(extra, (0, width - d - e))
            out.append(t)
        acc = torch.promote_types(qkv.dtype, torch.float32)
        k = qkv[:, :, 1].to(acc)
        ksq = (k * k).sum(-1)
        slot = out[1][..., d + knorm_slot]
        slot.copy_(slot.to(acc) - ksq * inv_hy.to(acc))
        ctx.d, ctx.e, ctx.knorm_slot, ctx.extra_dtype = d, e, knorm_slot, q_extra.dtype
        ctx.save_for_backward(out[1], ksq, inv_hy)
        return tuple(out)

    @staticmethod
    def backward(ctx, gq: Tensor | None, gk: Tensor | None, gv: Tensor | None):
        k_aug, ksq, inv_hy = ctx.saved_tensors
        d, e, slot = ctx.d, ctx.e, ctx.knorm_slot
        b, n, h, _ = k_aug.shape
        g_qkv = g_q_extra = g_k_extra = g_inv_hy = None
        if ctx.needs_input_grad[0]:
            g_qkv = k_aug.new_zeros(b, n, 3, h, d) if gq is None or gk is None or gv is None \
                else k_aug.new_empty(b, n, 3, h, d)
            if gq is not None:
                g_qkv[:, :, 0] = gq[..., :d]
            if gv is not None:
                g_qkv[:, :, 2] = gv[..., :d]
            if gk is not None:  # d(-||k||^2 / h_y)/dk = -2 k / h_y
                coef = (gk[..., d + slot] * (-2.0 * inv_hy).to(gk.dtype))[..., None]
                torch.addcmul(gk[..., :d], k_aug[..., :d], coef, out=g_qkv[:, :, 1])
        if gq is not None and ctx.needs_input_grad[1]:
            g_q_extra = gq[..., d : d + e].sum(0).to(ctx.extra_dtype)
        if gk is not None and ctx.needs_input_grad[2]:
            g_k_extra = gk[..., d : d + e].sum(0).to(ctx.extra_dtype)
        if gk is not None and ctx.needs_input_grad[3]:
            g_inv_hy = -(gk[..., d + slot].to(ksq.dtype) * ksq).sum((0, 1)).to(inv_hy.dtype)
        return g_qkv, g_q_extra, g_k_extra, g_inv_hy, None, None


KINDS = ("sa", "bsa", "alibi", "rope")
# the computation each forward dispatches to (:meth:`Attention.path`); tests assert which one runs
PATHS = ("sdpa", "sdpa-bias", "bsa-expanded", "bsa-bias")


class Attention(nn.Module):
    """Multi-head self-attention: ``sa`` (softmax of dot products), ``bsa``, ``alibi`` or ``rope``.

    Args:
        dim: model width.
        num_heads: number of heads; ``dim`` must be divisible by it.
        kind: one of :data:`KINDS`.
        hp_init: initial spatial bandwidth ``h_p`` (BSA only), same for every head.
        range_kernel: BSA's content kernel, ``"gauss"`` (``-||q-k||^2/h_y``) or ``"dot"`` (``2 q.k/h_y``).
        spatial: BSA's spatial kernel ``-||p_i-p_j||^2/h_p`` on (default) or off (no ``log_hp``).
        learn_bandwidths: BSA's ``log_hy``/``log_hp`` are parameters (default) or fixed buffers.
        hy_init: initial ``h_y`` (default ``2 sqrt(d_head)``: the content term has SA's scale).
    """

    def __init__(self, dim: int, num_heads: int, kind: str = "sa", hp_init: float = 1.0, *,
                 range_kernel: str = "gauss", spatial: bool = True, learn_bandwidths: bool = True,
                 hy_init: float | None = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown attention kind {kind!r}")
        if range_kernel not in ("gauss", "dot"):
            raise ValueError(f"unknown range kernel {range_kernel!r}")
        self.kind = kind
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.range_kernel, self.spatial = range_kernel, bool(spatial)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if kind == "bsa":
            # 2 / h_y = 1 / sqrt(d_head) makes the content term match q.k / sqrt(d) at init.
            hy0 = 2.0 * math.sqrt(self.head_dim) if hy_init is None else hy_init
            self._bandwidth("log_hy", math.log(hy0), learn_bandwidths)
            if self.spatial:
                self._bandwidth("log_hp", math.log(hp_init), learn_bandwidths)
        if kind == "alibi":  # fixed slopes, not in the checkpoint
            self.register_buffer("slopes", torch.tensor(alibi_slopes(num_heads)), persistent=False)
        if kind == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head width, got {self.head_dim}")

    def _bandwidth(self, name: str, value: float, learn: bool) -> None:
        t = torch.full((self.num_heads,), value)
        if learn:
            setattr(self, name, nn.Parameter(t))
        else:  # a persistent buffer: the checkpoint keeps the key, the optimiser never sees it
            self.register_buffer(name, t)

    @property
    def needs_positions(self) -> bool:
        """Whether forward needs the token positions ``pos`` (BSA's spatial kernel, ALiBi's distances)."""
        return self.kind == "alibi" or (self.kind == "bsa" and self.spatial)

    def extra_repr(self) -> str:
        s = f"kind={self.kind}, num_heads={self.num_heads}, head_dim={self.head_dim}"
        return s + (f", range={self.range_kernel}, spatial={self.spatial}" if self.kind == "bsa" else "")

    def bandwidths(self) -> tuple[Tensor, Tensor | None]:
        """Current ``(h_y, h_p)`` per head (BSA only; ``h_p`` is None without the spatial kernel)."""
        return self.log_hy.exp(), (self.log_hp.exp() if self.spatial else None)

    def uses_expansion(self, pos: BSAPositions) -> bool:
        """Whether BSA runs as one bias-free SDPA call for ``pos`` (else the exact bias path).

        Reads ``h_p`` on the host: one device sync per call on an accelerator. Without the spatial
        kernel nothing cancels and the expansion always applies.
        """
        if not self.spatial:
            return True
        r = pos.max_sq * math.exp(-float(self.log_hp.detach().min()))
        return r * torch.finfo(pos.feats.dtype).eps <= SPATIAL_TOL

    def path(self, pos: BSAPositions | None = None, sq_dist: Tensor | None = None) -> str:
        """The computation :meth:`forward` runs for these inputs, one of :data:`PATHS`."""
        if self.kind in ("sa", "rope"):
            return "sdpa"
        if self.kind == "alibi":
            return "sdpa-bias"
        if sq_dist is not None:
            return "bsa-bias"
        if not self.spatial or (pos is not None and self.uses_expansion(pos)):
            return "bsa-expanded"
        return "bsa-bias"

    def values(self, x: Tensor) -> Tensor:
        """The value vectors ``W_V x + b_V`` of ``x`` ``(B, N, dim)``, heads concatenated (GRC's ``Y_0``
        under ``grc_y0='values'``)."""
        c = x.shape[-1]
        return F.linear(x, self.qkv.weight[2 * c :], self.qkv.bias[2 * c :])

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        sq_dist: Tensor | None = None,
        pos: BSAPositions | None = None,
    ) -> Tensor:
        """Attend over ``x`` of shape ``(B, N, dim)``.

        ``key_padding_mask`` is ``(B, N)`` with True for real tokens. BSA (with its spatial kernel)
        and ALiBi need the token positions: ``pos`` (the model's :class:`TokenPositions` output,
        shared by all layers; BSA's fast path), or ``sq_dist``, the dense ``(N, N)`` squared
        distances (BSA: the exact bias path, kept for reference).
        """
        b, n, c = x.shape
        path = self.path(pos, sq_dist)
        if path == "sdpa" or path == "sdpa-bias":
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            if self.kind == "rope":
                cos, sin = rope_tables(n, self.head_dim, q.dtype, q.device)
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            if self.kind == "alibi":
                out = self._alibi(q, k, v, pos, sq_dist, key_padding_mask, causal)
            else:
                out = _sdpa(q, k, v, key_padding_mask, causal)
            return self.proj(out.transpose(1, 2).reshape(b, n, c))
        if path == "bsa-expanded":
            if not self.spatial and self.range_kernel == "dot":
                return self._bsa_dot_only(x, key_padding_mask, causal)
            return self._bsa_expanded(x, pos, key_padding_mask, causal)
        if sq_dist is None and self.spatial:
            if pos is None:
                raise ValueError("BSA needs the token positions (pos) or their squared distances (sq_dist)")
            sq_dist = pos.sq_dist()
        return self._bsa_bias(x, sq_dist, key_padding_mask, causal)

    def _alibi(self, q: Tensor, k: Tensor, v: Tensor, pos: BSAPositions | None, sq_dist: Tensor | None,
               key_padding_mask: Tensor | None, causal: bool) -> Tensor:
        """SDPA with ALiBi's ``(1, H, N, N)`` float bias as ``attn_mask`` (masks folded in as -inf)."""
        n = q.shape[-2]
        if sq_dist is None:
            if pos is None:
                raise ValueError("ALiBi needs the token positions (pos) or their squared distances (sq_dist)")
            sq_dist = pos.sq_dist()
        bias = alibi_bias(self.slopes.to(q.dtype), sq_dist[:n, :n])
        mask = build_attn_mask(key_padding_mask, causal, n, q.device)
        if mask is not None:
            bias = bias.masked_fill(~mask, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

    def _scaled_qkv(self, x: Tensor, inv_hy: Tensor) -> Tensor:
        """``(B, N, 3, H, d)`` with ``q`` scaled by ``2 / h_y`` per head, folded into the projection."""
        b, n, c = x.shape
        d = self.head_dim
        w_qkv, b_qkv = self.qkv.weight, self.qkv.bias
        scale = torch.cat([(2.0 * inv_hy).to(w_qkv.dtype).repeat_interleave(d), w_qkv.new_ones(2 * c)])
        return F.linear(x, w_qkv * scale[:, None], b_qkv * scale).view(b, n, 3, self.num_heads, d)

    def _bsa_dot_only(self, x: Tensor, key_padding_mask: Tensor | None, causal: bool) -> Tensor:
        """BSA with the dot range kernel and no spatial kernel: ``softmax((2/h_y) q.k)``, plain SDPA."""
        b, n, c = x.shape
        inv_hy = (-self.log_hy).exp().to(torch.promote_types(x.dtype, torch.float32))
        q, k, v = self._scaled_qkv(x, inv_hy).permute(2, 0, 3, 1, 4).unbind(0)
        out = _sdpa(q, k, v, key_padding_mask, causal, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def _bsa_expanded(self, x: Tensor, pos: BSAPositions | None, key_padding_mask: Tensor | None,
                      causal: bool) -> Tensor:
        """BSA as one SDPA call on augmented q/k/v, no bias (module docstring)."""
        b, n, c = x.shape
        h, d = self.num_heads, self.head_dim
        acc = pos.feats.dtype if pos is not None else torch.promote_types(x.dtype, torch.float32)
        inv_hy = (-self.log_hy).exp().to(acc)
        if self.spatial:
            f = pos.feats
            inv_hp = (-self.log_hp).exp().to(acc)
            p, sq, m = f[:, None, :-2], f[:, None, -2:-1], f[:, None, -1:]  # (N, 1, .)
            ihp = inv_hp[None, :, None]  # (1, H, 1)
            one = torch.ones_like(sq).expand(n, h, 1)
            if pos.num_prefix:
                q_extra = torch.cat([2.0 * ihp * p, one, m.expand(n, h, 1), ihp * sq], -1)
                zero, not_pos = torch.zeros_like(one), (1.0 - m).expand(n, h, 1)
                k_extra = torch.cat([p.expand(n, h, -1), zero, -ihp * sq, not_pos], -1)
            else:
                q_extra = torch.cat([2.0 * ihp * p, one], -1)
                k_extra = torch.cat([p.expand(n, h, -1), -ihp * sq], -1)
            knorm_slot = f.shape[1] - 2
        else:  # only the key-norm column: q' = [(2/h_y) q, 1], k' = [k, -||k||^2/h_y]
            q_extra = torch.ones(n, h, 1, dtype=acc, device=x.device)
            k_extra = torch.zeros(n, h, 1, dtype=acc, device=x.device)
            knorm_slot = 0
        # the dot range kernel drops the key-norm term: its slot gets 0 * ||k||^2
        knorm_coef = inv_hy if self.range_kernel == "gauss" else torch.zeros_like(inv_hy)
        e = q_extra.shape[-1]
        align = 8 if x.is_cuda else 4
        width = -(-(d + e) // align) * align
        # (2 / h_y) q folded into the projection: the content part of q_aug comes out of the GEMM.
        qkv = self._scaled_qkv(x, inv_hy)
        q, k, v = _AugmentQKV.apply(qkv, q_extra, k_extra, knorm_coef, knorm_slot, width)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, N, width) views
        out = _sdpa(q, k, v, key_padding_mask, causal, scale=1.0)
        # out's padded columns are exactly 0 (v's are): project with zero columns instead of slicing.
        w = F.pad(self.proj.weight.view(c, h, d), (0, width - d)).view(c, h * width)
        return F.linear(out.transpose(1, 2).reshape(b, n, h * width), w, self.proj.bias)

    def _bsa_bias(self, x: Tensor, sq_dist: Tensor | None, key_padding_mask: Tensor | None, causal: bool) -> Tensor:
        """BSA with the dense ``(B, H, N, N)`` additive bias: exact for any ``h_p``, O(N^2) memory."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        inv_hy = (-self.log_hy).exp().to(q.dtype)[None, :, None, None]
        bias = q.new_zeros(1, 1, 1, n)
        if self.range_kernel == "gauss":
            bias = -(k * k).sum(-1, keepdim=True).transpose(-1, -2) * inv_hy  # (B, H, 1, N)
        if self.spatial:
            inv_hp = (-self.log_hp).exp().to(q.dtype)[None, :, None, None]
            bias = bias - sq_dist.to(q.dtype)[None, None] * inv_hp  # (B, H, N, N)
        mask = build_attn_mask(key_padding_mask, causal, n, x.device)
        if mask is not None:
            bias = bias.masked_fill(~mask, float("-inf"))
        bias = bias.expand(b, self.num_heads, n, n)
        out = F.scaled_dot_product_attention(q * (2.0 * inv_hy), k, v, attn_mask=bias, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
