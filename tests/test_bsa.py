"""BSA: the bias-free augmented SDPA path against a direct O(N^2 d) evaluation of the kernel formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robench.models import ArchConfig, build_model
from attention_reference import literal_attention
from robench.models.attention import SPATIAL_TOL, Attention, TokenPositions, pairwise_sq_dist


def bsa_reference(attn: Attention, x, sq_dist, key_padding_mask=None, causal=False):
    """A_ij = softmax_j(-||q_i - k_j||^2 / h_y - ||p_i - p_j||^2 / h_p), written out literally
    (:func:`attention_reference.literal_attention` on a default BSA layer)."""
    assert attn.kind == "bsa" and attn.range_kernel == "gauss" and attn.spatial
    return literal_attention(attn, x, sq_dist, key_padding_mask, causal)


def _random_bsa(dim=32, heads=4, seed=0, dtype=torch.float64, hp=3.0):
    torch.manual_seed(seed)
    attn = Attention(dim, heads, kind="bsa", hp_init=hp).to(dtype)
    with torch.no_grad():  # move the bandwidths away from their init, differently per head
        attn.log_hy.add_(torch.randn(heads, dtype=dtype) * 0.5)
        attn.log_hp.add_(torch.randn(heads, dtype=dtype) * 0.5)
    return attn


def _grid(g):
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], 1)


LAYOUTS = {  # name: (integer coordinates of the position tokens, number of prefix tokens)
    "grid2d-cls": (_grid(3), 1),
    "grid2d": (_grid(3), 0),
    "text1d-cls": (torch.arange(8)[:, None], 1),
    "text1d": (torch.arange(8)[:, None], 0),
}


def _setup(layout, dtype, batch=2, dim=32, seed=0):
    coords, prefix = LAYOUTS[layout]
    positions = TokenPositions(coords, num_prefix=prefix)
    n = len(coords) + prefix
    sq = pairwise_sq_dist(coords, num_prefix=prefix)  # straight from the raw coordinates
    attn = _random_bsa(dim=dim, seed=seed, dtype=dtype)
    x = torch.randn(batch, n, dim, dtype=dtype)
    return attn, positions(n, dtype), sq, x


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_bsa_fast_path_matches_reference(layout, dtype, tol):
    attn, pos, sq, x = _setup(layout, dtype)
    assert attn.uses_expansion(pos)
    if LAYOUTS[layout][1]:
        assert sq[0].abs().sum() == 0 and sq[:, 0].abs().sum() == 0  # CLS has no spatial term
    torch.testing.assert_close(attn(x, pos=pos), bsa_reference(attn, x, sq), atol=tol, rtol=tol)


@pytest.mark.parametrize("layout", ["text1d-cls", "grid2d-cls", "text1d"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_bsa_fast_path_matches_reference_with_padding_mask(layout, dtype, tol):
    attn, pos, sq, x = _setup(layout, dtype, batch=3)
    n = x.shape[1]
    valid = torch.ones(3, n, dtype=torch.bool)
    valid[0, 4:] = False
    valid[2, 2:] = False
    got = attn(x, key_padding_mask=valid, pos=pos)
    torch.testing.assert_close(got, bsa_reference(attn, x, sq, key_padding_mask=valid), atol=tol, rtol=tol)


@pytest.mark.parametrize("layout", ["text1d", "text1d-cls"])
@pytest.mark.parametrize("padding", [False, True])
def test_bsa_fast_path_matches_reference_with_causal_mask(layout, padding):
    attn, pos, sq, x = _setup(layout, torch.float64)
    valid = None
    if padding:
        valid = torch.ones(x.shape[:2], dtype=torch.bool)
        valid[1, -3:] = False
    got = attn(x, key_padding_mask=valid, causal=True, pos=pos)
    want = bsa_reference(attn, x, sq, key_padding_mask=valid, causal=True)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    # causality: changing a later token leaves earlier outputs unchanged
    x2 = x.clone()
    x2[:, -1] += 1.0
    torch.testing.assert_close(attn(x2, key_padding_mask=valid, causal=True, pos=pos)[:, :-1], got[:, :-1])


def test_bsa_small_hp_falls_back_to_the_exact_bias_path():
    """Long 1-D positions and a small h_p: the expansion would cancel, so the layer uses the bias path."""
    torch.manual_seed(3)
    coords = torch.arange(200)[:, None]
    positions = TokenPositions(coords, num_prefix=1)
    n = 201
    attn = _random_bsa(dtype=torch.float32, hp=50.0)
    with torch.no_grad():
        attn.log_hp[1] = math.log(2.0)  # one head with a small h_p: R = 99.5^2 / 2 ~ 5000
    pos = positions(n)
    assert not attn.uses_expansion(pos)
    x = torch.randn(2, n, 32)
    valid = torch.ones(2, n, dtype=torch.bool)
    valid[1, 150:] = False
    sq = pairwise_sq_dist(coords, num_prefix=1)
    got = attn(x, key_padding_mask=valid, pos=pos)
    want = bsa_reference(attn.double(), x.double(), sq.double(), key_padding_mask=valid).float()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_bsa_guard_boundary_is_accurate_in_fp32():
    """Just inside the guard (R ~ 20, h_p 14x below its init) fp32 still meets 1e-5 against fp64."""
    torch.manual_seed(4)
    coords = torch.arange(64)[:, None]
    positions = TokenPositions(coords, num_prefix=1)
    n = 65
    pos = positions(n)
    limit = SPATIAL_TOL / torch.finfo(torch.float32).eps  # the largest R = max ||p||^2 / h_p accepted
    attn = _random_bsa(dtype=torch.float32)
    with torch.no_grad():
        attn.log_hp.copy_(math.log(pos.max_sq / (1.05 * limit)) + torch.tensor([0.0, 0.5, 1.0, 2.0]))
    assert not attn.uses_expansion(pos)  # one head over the limit is enough
    with torch.no_grad():
        attn.log_hp.add_(math.log(1.05 / 0.95))  # head 0 at R = 0.95 limit
    assert attn.uses_expansion(pos)
    x = torch.randn(2, n, 32) * 2
    sq = pairwise_sq_dist(coords, num_prefix=1)
    want = bsa_reference(attn.double(), x.double(), sq.double()).float()
    torch.testing.assert_close(attn.float()(x, pos=pos), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("small_hp", [False, True])
def test_bsa_gradients_match_reference(small_hp):
    """Autograd through the fast path (custom backward) and the fallback equals the literal formula's."""
    attn, pos, sq, x = _setup("text1d-cls", torch.float64, batch=2)
    if small_hp:
        with torch.no_grad():
            attn.log_hp.fill_(-30.0)
        assert not attn.uses_expansion(pos)
    else:
        assert attn.uses_expansion(pos)
    valid = torch.ones(x.shape[:2], dtype=torch.bool)
    valid[1, 5:] = False
    x.requires_grad_()
    g_out = torch.randn_like(x)
    params = [x, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, attn.log_hy, attn.log_hp]
    got = torch.autograd.grad((attn(x, key_padding_mask=valid, pos=pos) * g_out).sum(), params)
    want = torch.autograd.grad((bsa_reference(attn, x, sq, key_padding_mask=valid) * g_out).sum(), params)
    for name, a, b in zip(["x", "qkv.w", "qkv.b", "proj.w", "proj.b", "log_hy", "log_hp"], got, want):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, msg=name)


def test_bsa_gradients_fp32_2d_grid():
    attn, pos, sq, x = _setup("grid2d-cls", torch.float32, batch=2)
    ref = _random_bsa(dtype=torch.float64)  # same seed: the same weights, in fp64
    x.requires_grad_()
    xd = x.detach().double().requires_grad_()
    got = torch.autograd.grad(attn(x, pos=pos).square().sum(), [x, attn.log_hy, attn.log_hp, attn.qkv.weight])
    want = torch.autograd.grad(bsa_reference(ref, xd, sq).square().sum(), [xd, ref.log_hy, ref.log_hp, ref.qkv.weight])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.float(), atol=1e-5, rtol=1e-4)


def test_bsa_fast_path_calls_sdpa_without_a_float_bias(monkeypatch):
    """One SDPA call, no additive (N x N) bias: a boolean mask or none, widths aligned, v padded."""
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        calls.append((q.shape, k.shape, v.shape, None if attn_mask is None else attn_mask.dtype, kw))
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    attn, pos, _, x = _setup("grid2d-cls", torch.float32)
    valid = torch.ones(x.shape[:2], dtype=torch.bool)
    attn(x, pos=pos)
    attn(x, key_padding_mask=valid, pos=pos)
    attn(x, causal=True, pos=pos)
    assert len(calls) == 3
    for (qs, ks, vs, mask_dtype, kw), want_mask in zip(calls, [None, torch.bool, None]):
        assert mask_dtype == want_mask
        assert qs[-1] == ks[-1] == vs[-1] == 8 + 8  # d_head 8 + (2 + 3) extra dims, aligned to 4
        assert kw["scale"] == 1.0
    assert calls[2][4]["is_causal"]


def test_token_positions_features():
    tp = TokenPositions(_grid(3), num_prefix=1)
    pos = tp()
    assert pos.feats.shape == (10, 4) and pos.feats.dtype == torch.float32
    assert pos.feats[0].abs().sum() == 0  # the CLS row: no position, m = 0
    p = pos.feats[1:, :2]
    torch.testing.assert_close(p.mean(0), torch.zeros(2))  # centred
    torch.testing.assert_close(pos.feats[1:, 2], p.square().sum(-1))
    assert (pos.feats[1:, 3] == 1).all()
    assert pos.max_sq == 2.0
    torch.testing.assert_close(pos.sq_dist(), pairwise_sq_dist(_grid(3), num_prefix=1))
    torch.testing.assert_close(tp.sq_dist(), pairwise_sq_dist(_grid(3), num_prefix=1))
    assert tp.state_dict() == {}  # nothing in checkpoints
    assert tp.double().twice_centred.dtype == torch.int64  # dtype casts leave the integer positions exact
    # a prefix of the table (text): features and max of the first n tokens
    text = TokenPositions(torch.arange(10)[:, None], num_prefix=1)
    assert text(4).feats.shape == (4, 3)
    assert text(4).max_sq == max(float(v) ** 2 for v in text(4).feats[1:, 0])
    assert text(11).max_sq == 4.5**2
    assert text(4, torch.float64).feats.dtype == torch.float64


def test_positions_built_under_inference_mode_still_allow_gradients():
    """Evaluation predicts under inference_mode, then attacks take gradients with the same model."""
    m = build_model(ArchConfig(family="vit", variant="bsa", depth=1)).eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.inference_mode():
        m(x)
    x.requires_grad_()
    (g,) = torch.autograd.grad(m(x).sum(), [x])
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("family", ["vit", "text"])
def test_bsa_model_fast_path_equals_exact_path(family):
    kw = dict(vocab_size=50, max_length=12) if family == "text" else dict(img_size=16, patch_size=4)
    torch.manual_seed(5)
    m = build_model(ArchConfig(family=family, variant="bsa-grc", depth=2, **kw)).double().eval()
    with torch.no_grad():
        for blk in m.encoder.blocks:
            blk.attn.log_hp.add_(torch.randn(blk.attn.num_heads, dtype=torch.float64))
    if family == "vit":
        x = torch.rand(3, 1, 16, 16, dtype=torch.float64)
        got = m.forward_features(x)
        want = m.encoder(m.embed(x), sq_dist=m.sq_dist.double())
    else:
        x = torch.randint(2, 50, (3, 9))
        x[1, 6:] = 0  # padding
        n = x.shape[1] + 1
        got = m.forward_features(x)
        valid = torch.cat([torch.ones(3, 1, dtype=torch.bool), x != 0], 1)
        want = m.encoder(m.embed(x), key_padding_mask=valid, sq_dist=m.sq_dist[:n, :n].double())
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", ["digits-vit-bsa", "digits-vit-bsa-grc", "wordnet-text-bsa", "wordnet-text-bsa-grc"])
def test_zoo_bsa_checkpoints_take_the_fast_path_and_match_the_exact_path(name):
    from robench.models.loading import list_zoo, load_model

    if name not in list_zoo():
        pytest.skip(f"{name} not in the zoo")
    net = next(m for m in load_model(name).module.modules() if hasattr(m, "positions"))
    torch.manual_seed(6)
    if net.cfg.family == "vit":
        x = torch.randn(16, net.cfg.in_chans, net.cfg.img_size, net.cfg.img_size)
        tokens = net.embed(x)
        pos, mask = net.positions(tokens.shape[1]), None
    else:
        x = torch.randint(2, net.cfg.vocab_size, (16, net.cfg.max_length))
        x[::2, 10:] = net.pad_id
        tokens = net.embed(x)
        pos = net.positions(tokens.shape[1])
        mask = torch.cat([torch.ones(16, 1, dtype=torch.bool), x != net.pad_id], 1)
    assert all(blk.attn.uses_expansion(pos) for blk in net.encoder.blocks)
    with torch.no_grad():
        fast = net.encoder(tokens, key_padding_mask=mask, pos=pos)
        exact = net.encoder(tokens, key_padding_mask=mask, sq_dist=net.sq_dist[: tokens.shape[1], : tokens.shape[1]])
    torch.testing.assert_close(fast, exact, atol=1e-4, rtol=1e-4)


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
