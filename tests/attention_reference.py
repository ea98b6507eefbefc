"""The literal O(N^2 d) attention every fast path is tested against (tests/test_bsa.py,
tests/test_arch_options.py): each kind and option written out one query row at a time."""

from __future__ import annotations

import math

import torch

from robench.models.attention import Attention


def literal_attention(attn: Attention, x, sq_dist, key_padding_mask=None, causal=False):
    """Every kind and option written out one query row at a time (the N x N x d difference on purpose)."""
    b, n, c = x.shape
    h, d = attn.num_heads, attn.head_dim
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = (t.reshape(b, n, h, d).permute(0, 2, 1, 3) for t in qkv.split(c, dim=-1))
    if attn.kind == "rope":  # rotate the pair (m, m + d/2) of position p by p * 10000^(-2m/d)
        def rotate(t):
            out = torch.empty_like(t)
            for p in range(n):
                for m in range(d // 2):
                    th = p * 10000.0 ** (-2.0 * m / d)
                    a, bb = t[..., p, m], t[..., p, m + d // 2]
                    out[..., p, m] = a * math.cos(th) - bb * math.sin(th)
                    out[..., p, m + d // 2] = bb * math.cos(th) + a * math.sin(th)
            return out
        q, k = rotate(q), rotate(k)
    rows = []
    for bi in range(b):
        heads = []
        for hi in range(h):
            logits = []
            for i in range(n):
                if attn.kind in ("sa", "rope", "alibi"):
                    row = (q[bi, hi, i][None, :] * k[bi, hi]).sum(-1) / math.sqrt(d)
                    if attn.kind == "alibi":  # power-of-2 heads: m_h = 2^(-8 (h+1) / H)
                        row = row - 2.0 ** (-8.0 * (hi + 1) / h) * sq_dist[i].to(x.dtype).sqrt()
                else:
                    hy = attn.log_hy[hi].exp()
                    if attn.range_kernel == "gauss":
                        diff = q[bi, hi, i][None, :] - k[bi, hi]
                        row = -(diff * diff).sum(-1) / hy
                    else:
                        row = 2.0 * (q[bi, hi, i][None, :] * k[bi, hi]).sum(-1) / hy
                    if attn.spatial:
                        row = row - sq_dist[i].to(x.dtype) / attn.log_hp[hi].exp()
                logits.append(row)
            logits = torch.stack(logits)
            if key_padding_mask is not None:
                logits = logits.masked_fill(~key_padding_mask[bi][None, :], float("-inf"))
            if causal:
                logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
            heads.append(torch.softmax(logits, -1) @ v[bi, hi])
        rows.append(torch.stack(heads))
    out = torch.stack(rows).permute(0, 2, 1, 3).reshape(b, n, c)
    return out @ attn.proj.weight.T + attn.proj.bias
