"""BSA: the fused SDPA path against a direct O(N^2 d) evaluation of the kernel formula."""

from __future__ import annotations

import pytest
import torch

from robench.models import ArchConfig, build_model
from robench.models.attention import Attention, pairwise_sq_dist


def bsa_reference(attn: Attention, x, sq_dist, key_padding_mask=None, causal=False):
    """A_ij = softmax_j(-||q_i - k_j||^2 / h_y - ||p_i - p_j||^2 / h_p), written out literally."""
    b, n, c = x.shape
    h, d = attn.num_heads, attn.head_dim
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv.split(c, dim=-1)
    q = q.reshape(b, n, h, d).permute(0, 2, 1, 3)
    k = k.reshape(b, n, h, d).permute(0, 2, 1, 3)
    v = v.reshape(b, n, h, d).permute(0, 2, 1, 3)
    hy, hp = attn.log_hy.exp(), attn.log_hp.exp()
    out = torch.zeros_like(q)
    for bi in range(b):
        for hi in range(h):
            logits = torch.empty(n, n, dtype=x.dtype)
            for i in range(n):
                diff = q[bi, hi, i][None, :] - k[bi, hi]  # (n, d): the N x N x d term, on purpose
                logits[i] = -(diff * diff).sum(-1) / hy[hi] - sq_dist[i] / hp[hi]
            if key_padding_mask is not None:
                logits[:, ~key_padding_mask[bi]] = float("-inf")
            if causal:
                logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
            out[bi, hi] = torch.softmax(logits, -1) @ v[bi, hi]
    out = out.permute(0, 2, 1, 3).reshape(b, n, c)
    return out @ attn.proj.weight.T + attn.proj.bias


def _random_bsa(dim=32, heads=4, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    attn = Attention(dim, heads, kind="bsa", hp_init=3.0).to(dtype)
    with torch.no_grad():  # move the bandwidths away from their init, differently per head
        attn.log_hy.add_(torch.randn(heads, dtype=dtype) * 0.5)
        attn.log_hp.add_(torch.randn(heads, dtype=dtype) * 0.5)
    return attn


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_bsa_matches_reference_image_grid_with_cls(dtype, tol):
    attn = _random_bsa(dtype=dtype)
    rows, cols = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
    sq = pairwise_sq_dist(torch.stack([rows.flatten(), cols.flatten()], 1), num_prefix=1).to(dtype)
    assert sq[0].abs().sum() == 0 and sq[:, 0].abs().sum() == 0  # CLS has no spatial term
    x = torch.randn(2, 10, 32, dtype=dtype)
    torch.testing.assert_close(attn(x, sq_dist=sq), bsa_reference(attn, x, sq), atol=tol, rtol=tol)


def test_bsa_matches_reference_with_padding_mask():
    attn = _random_bsa()
    n = 7
    sq = pairwise_sq_dist(torch.arange(n - 1)[:, None], num_prefix=1).double()
    x = torch.randn(3, n, 32, dtype=torch.float64)
    valid = torch.ones(3, n, dtype=torch.bool)
    valid[0, 4:] = False
    valid[2, 2:] = False
    got = attn(x, key_padding_mask=valid, sq_dist=sq)
    torch.testing.assert_close(got, bsa_reference(attn, x, sq, key_padding_mask=valid), atol=1e-10, rtol=1e-10)


def test_bsa_matches_reference_with_causal_mask():
    attn = _random_bsa()
    n = 9
    sq = pairwise_sq_dist(torch.arange(n)[:, None]).double()
    x = torch.randn(2, n, 32, dtype=torch.float64)
    got = attn(x, causal=True, sq_dist=sq)
    torch.testing.assert_close(got, bsa_reference(attn, x, sq, causal=True), atol=1e-10, rtol=1e-10)
    # causality: changing a later token leaves earlier outputs unchanged
    x2 = x.clone()
    x2[:, -1] += 1.0
    torch.testing.assert_close(attn(x2, causal=True, sq_dist=sq)[:, :-1], got[:, :-1])


def test_bsa_init_matches_dot_product_scale():
    attn = Attention(64, 4, kind="bsa", hp_init=5.0)
    hy, hp = attn.bandwidths()
    # 2 / h_y == 1 / sqrt(d_head): the content term starts at the scale of q.k / sqrt(d)
    torch.testing.assert_close(2.0 / hy, torch.full((4,), 1.0 / 16**0.5))
    torch.testing.assert_close(hp, torch.full((4,), 5.0))


def test_pairwise_sq_dist_direct():
    coords = torch.tensor([[0, 0], [1, 2], [3, 1]])
    d = pairwise_sq_dist(coords)
    assert d.tolist() == [[0, 5, 10], [5, 0, 5], [10, 5, 0]]


def _keys(variant, family="vit"):
    kw = dict(vocab_size=50, max_length=12) if family == "text" else {}
    return {k: tuple(v.shape) for k, v in build_model(ArchConfig(family=family, variant=variant, depth=2, **kw)).state_dict().items()}


@pytest.mark.parametrize("family", ["vit", "text"])
def test_variants_differ_only_in_their_own_parameters(family):
    sa, bsa, grc, both = (_keys(v, family) for v in ("sa", "bsa", "grc", "bsa-grc"))
    bw = {f"encoder.blocks.{i}.attn.{p}": (4,) for i in range(2) for p in ("log_hy", "log_hp")}
    tau = {f"encoder.blocks.{i}.tau": () for i in range(2)}
    assert set(sa) - set(bsa) == {"pos_embed"}  # BSA: no additive position embedding
    assert {k: bsa[k] for k in set(bsa) - set(sa)} == bw
    assert {k: grc[k] for k in set(grc) - set(sa)} == tau and set(sa) <= set(grc)
    assert {k: both[k] for k in set(both) - set(sa)} == {**bw, **tau}
    for other in (bsa, grc, both):
        assert all(other[k] == sa[k] for k in set(other) & set(sa))


@pytest.mark.parametrize("family", ["vit", "text"])
def test_bsa_models_have_no_position_parameters_or_buffers_added_to_tokens(family):
    kw = dict(vocab_size=50, max_length=12, text_pos_embedding="sinusoidal") if family == "text" else {}
    m = build_model(ArchConfig(family=family, variant="bsa", **kw))
    assert not any("pos" in n for n, _ in m.named_parameters())
    assert not hasattr(m, "pos_table")
    assert m.pos_embed is None
