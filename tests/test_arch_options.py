"""The architecture options (BSA range/spatial kernels, bandwidths, position embedding; GRC's t, sublayers
and Y_0) and the ALiBi / RoPE baselines, each against a literal O(N^2 d) formula written here (values
and gradients), the path each one takes, and how cards and ``--arch-arg`` record them."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from robench.checkpoint.card import Card
from robench.errors import RobenchError
from robench.models import ArchConfig, build_model
from robench.models.attention import Attention, TokenPositions, pairwise_sq_dist
from robench.models.block import Block, Encoder, GRCOptions
from robench.models.config import arch_options_json, check_options, option_fields, parse_arch_args
from robench.models.relpos import alibi_slopes
from attention_reference import literal_attention


def _grid(g):
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], 1)


LAYOUTS = {  # name: (integer coordinates of the position tokens, number of prefix tokens)
    "grid2d-cls": (_grid(3), 1),
    "text1d-cls": (torch.arange(7)[:, None], 1),
    "lm1d": (torch.arange(8)[:, None], 0),
}


BSA_OPTIONS = [dict(range_kernel=r, spatial=s, learn_bandwidths=lb)
               for r in ("gauss", "dot") for s in (True, False) for lb in (True, False)]
KINDS = [("bsa", o) for o in BSA_OPTIONS] + [("alibi", {}), ("rope", {}), ("sa", {})]


def _layer(kind, opts, dtype=torch.float64, dim=16, heads=2, seed=0):
    torch.manual_seed(seed)
    attn = Attention(dim, heads, kind=kind, hp_init=3.0, **opts).to(dtype)
    if kind == "bsa":
        with torch.no_grad():  # move the bandwidths away from their init, differently per head
            attn.log_hy.add_(torch.randn(heads, dtype=dtype) * 0.5)
            if attn.spatial:
                attn.log_hp.add_(torch.randn(heads, dtype=dtype) * 0.5)
    return attn


def _inputs(layout, dtype, batch=2, dim=16):
    coords, prefix = LAYOUTS[layout]
    n = len(coords) + prefix
    pos = TokenPositions(coords, num_prefix=prefix)(n, dtype)
    return pos, pairwise_sq_dist(coords, num_prefix=prefix), torch.randn(batch, n, dim, dtype=dtype)


def _ids(kind, opts):
    return f"{kind}-" + "-".join(f"{k}={v}" for k, v in opts.items())


@pytest.mark.parametrize("kind,opts", KINDS, ids=[_ids(*k) for k in KINDS])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_kind_and_option_matches_the_literal_formula_values_and_gradients(kind, opts, layout):
    attn = _layer(kind, opts)
    pos, sq, x = _inputs(layout, torch.float64)
    causal = layout == "lm1d"
    valid = None
    if not causal:
        valid = torch.ones(x.shape[:2], dtype=torch.bool)
        valid[1, -3:] = False
    x.requires_grad_(True)
    w = torch.randn(x.shape, dtype=torch.float64)
    params = [p for p in attn.parameters()]

    def grads(out):
        return torch.autograd.grad((out * w).sum(), [x, *params])

    want = literal_attention(attn, x, sq, valid, causal)
    g_want = grads(want)
    runs = [attn(x, valid, causal, pos=pos)]
    if kind in ("bsa", "alibi"):
        runs.append(attn(x, valid, causal, sq_dist=sq))  # the exact bias path (BSA) / given distances (ALiBi)
    for got in runs:
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
        for a, b in zip(grads(got), g_want):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    if kind == "bsa":  # fixed bandwidths are buffers: in the state dict, never trained
        names = {n for n, _ in attn.named_parameters()}
        assert ("log_hy" in names) == opts["learn_bandwidths"]
        assert ("log_hy" in attn.state_dict()) and (("log_hp" in attn.state_dict()) == opts["spatial"])


@pytest.mark.parametrize("kind,opts", KINDS, ids=[_ids(*k) for k in KINDS])
def test_float32_fast_paths_match_the_float64_literal_formula(kind, opts):
    attn = _layer(kind, opts)
    pos, sq, x = _inputs("grid2d-cls", torch.float64)
    want = literal_attention(attn, x, sq).float()
    attn32 = attn.float()
    got = attn32(x.float(), pos=TokenPositions(*LAYOUTS["grid2d-cls"])(x.shape[1], torch.float32))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


EXPECTED_PATH = {  # kind, range, spatial -> (path, what SDPA's attn_mask is without padding)
    ("sa", None, None): ("sdpa", None), ("rope", None, None): ("sdpa", None),
    ("alibi", None, None): ("sdpa-bias", torch.float32),
    ("bsa", "gauss", True): ("bsa-expanded", None), ("bsa", "dot", True): ("bsa-expanded", None),
    ("bsa", "gauss", False): ("bsa-expanded", None), ("bsa", "dot", False): ("bsa-expanded", None),
}


@pytest.mark.parametrize("kind,opts", KINDS, ids=[_ids(*k) for k in KINDS])
def test_each_option_takes_its_stated_path_with_one_sdpa_call(kind, opts, monkeypatch):
    """No silent fallback: the path each option runs, and the one SDPA call it makes (no N x N
    bias except ALiBi's, which is the float attn_mask of the fused kernel)."""
    attn = _layer(kind, opts, dtype=torch.float32)
    pos, _, x = _inputs("grid2d-cls", torch.float32)
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        calls.append(None if attn_mask is None else attn_mask.dtype)
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    key = (kind, opts.get("range_kernel"), opts.get("spatial"))
    path, mask = EXPECTED_PATH[key]
    assert attn.path(pos) == path
    attn(x, pos=pos)
    assert calls == [mask]
    if kind == "bsa":
        calls.clear()
        assert attn.path(pos, sq_dist=pos.sq_dist()) == "bsa-bias"  # only when asked for the reference
        attn(x, sq_dist=pos.sq_dist())
        assert calls == [torch.float32]


def test_bsa_spatial_off_never_falls_back_even_for_tiny_h_p_equivalents():
    """Without the spatial kernel nothing cancels: the expansion holds at any length."""
    attn = _layer("bsa", dict(spatial=False), dtype=torch.float32)
    pos = TokenPositions(torch.arange(500)[:, None], num_prefix=1)(501)
    assert attn.uses_expansion(pos) and attn.path(pos) == "bsa-expanded"


def test_alibi_slopes_are_the_reference_values():
    assert alibi_slopes(8) == [2.0 ** -k for k in range(1, 9)]
    assert alibi_slopes(4) == [2.0 ** -k for k in (2, 4, 6, 8)]
    # 6 heads: the 4-head slopes, then every other slope of the 8-head list (the ALiBi reference code)
    assert alibi_slopes(6) == [2.0 ** -k for k in (2, 4, 6, 8)] + [2.0 ** -1, 2.0 ** -3]


def test_rope_scores_depend_only_on_the_offset():
    torch.manual_seed(5)
    attn = Attention(16, 2, kind="rope").double()
    x = torch.randn(1, 1, 16, dtype=torch.float64).expand(1, 12, 16)  # one token repeated
    c = 16
    q = (x @ attn.qkv.weight[:c].T + attn.qkv.bias[:c]).view(1, 12, 2, 8).transpose(1, 2)
    k = (x @ attn.qkv.weight[c:2 * c].T + attn.qkv.bias[c:2 * c]).view(1, 12, 2, 8).transpose(1, 2)
    from robench.models.relpos import apply_rope, rope_tables

    cos, sin = rope_tables(12, 8, torch.float64, torch.device("cpu"))
    s = apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-1, -2)
    torch.testing.assert_close(s[..., 3, 1], s[..., 10, 8])  # offset 2 at two places
    torch.testing.assert_close(s[..., 0, 0], s[..., 7, 7])


# ----------------------------------------------------------------------------------------------
# GRC options


def _t(tau):
    return 1.0 / (1.0 + torch.exp(-tau))


@pytest.mark.parametrize("t_mode", ["layer", "channel", "fixed"])
@pytest.mark.parametrize("sublayers", ["attn", "attn+mlp"])
def test_grc_block_options_by_hand_values_and_gradients(t_mode, sublayers):
    torch.manual_seed(1)
    blk = Block(16, 2, 2.0, attention="sa", residual="grc", grc_init=0.2,
                grc=GRCOptions(t=t_mode, sublayers=sublayers)).double()
    with torch.no_grad():  # away from the init, per channel where it is a vector
        blk.tau.add_(torch.linspace(-0.5, 0.5, blk.tau.numel(), dtype=torch.float64).view(blk.tau.shape))
        if blk.tau_mlp is not None:
            blk.tau_mlp.sub_(0.3)
    assert blk.tau.shape == ((16,) if t_mode == "channel" else ())
    trained = {n for n, _ in blk.named_parameters()}
    assert ("tau" in trained) == (t_mode != "fixed") and "tau" in blk.state_dict()
    assert ("tau_mlp" in blk.state_dict()) == (sublayers == "attn+mlp")
    x = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    y0 = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    t = _t(blk.tau)
    a = (1 - t) * (x + blk.attn(blk.norm1(x))) + t * y0  # X <- (1-t)(X + Attn(LN X)) + t Y0
    want = a + blk.mlp(blk.norm2(a))
    if sublayers == "attn+mlp":  # the MLP sub-layer boosted the same way, with its own t
        t2 = _t(blk.tau_mlp)
        want = (1 - t2) * want + t2 * y0
    got = blk(x, y0)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    w = torch.randn_like(got)
    params = [x, y0, *blk.parameters()]
    for a_, b_ in zip(torch.autograd.grad((got * w).sum(), params), torch.autograd.grad((want * w).sum(), params)):
        torch.testing.assert_close(a_, b_, atol=1e-12, rtol=1e-12)


def test_grc_fixed_t_stays_at_grc_init_and_per_channel_starts_there():
    fixed = build_model(ArchConfig(family="vit", variant="grc", grc_t="fixed", grc_init=0.3))
    chan = build_model(ArchConfig(family="vit", variant="grc", grc_t="channel", grc_init=0.3))
    for blk in fixed.encoder.blocks:
        assert math.isclose(float(blk.t), 0.3, rel_tol=1e-6) and not blk.tau.requires_grad
    for blk in chan.encoder.blocks:
        assert blk.tau.shape == (64,) and torch.allclose(blk.t, torch.full((64,), 0.3))


@pytest.mark.parametrize("family", ["vit", "text", "lm"])
def test_grc_y0_values_is_the_first_layers_values_for_every_block(family):
    kw = {} if family == "vit" else dict(vocab_size=40, max_length=9)
    torch.manual_seed(2)
    m = build_model(ArchConfig(family=family, variant="bsa-grc", depth=3, grc_y0="values", **kw)).double().eval()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64) if family == "vit" else torch.randint(2, 40, (2, 9))
    emb = m.embed(x)
    b0 = m.encoder.blocks[0]
    # literal: V^1 = LN_1(Y_emb) W_V^T + b_V of the first block, heads concatenated
    c = emb.shape[-1]
    y0 = b0.norm1(emb) @ b0.attn.qkv.weight[2 * c:].T + b0.attn.qkv.bias[2 * c:]
    kwargs = dict(causal=True) if family == "lm" else {}
    if family == "text":
        kwargs = dict(key_padding_mask=torch.ones(emb.shape[:2], dtype=torch.bool))
    sq = m.sq_dist if family != "lm" else m.positions.sq_dist()
    h = emb
    for blk in m.encoder.blocks:
        h = blk(h, y0, sq_dist=sq[: h.shape[1], : h.shape[1]], **kwargs)
    _, hidden = m.encoder(emb, return_hidden=True, pos=m.positions(emb.shape[1], emb.dtype), **kwargs)
    torch.testing.assert_close(hidden[-1], h, atol=1e-10, rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# models: position embedding, defaults, cards, --arch-arg


@pytest.mark.parametrize("family", ["vit", "text", "lm"])
def test_pos_embed_option_and_variant_defaults(family):
    kw = {} if family == "vit" else dict(vocab_size=40, max_length=9)
    has = lambda **c: "pos_embed" in build_model(ArchConfig(family=family, **kw, **c)).state_dict()
    assert has(variant="sa") and not has(variant="bsa") and not has(variant="alibi") and not has(variant="rope")
    assert has(variant="bsa", pos_embed=True) and not has(variant="sa", pos_embed=False)
    assert has(variant="rope", pos_embed=True)


def test_bsa_inits_are_options_with_todays_values_as_defaults():
    d = build_model(ArchConfig(family="vit", variant="bsa", img_size=8, patch_size=2))
    hy, hp = d.encoder.blocks[0].attn.bandwidths()
    assert torch.allclose(hy, torch.full((4,), 2 * math.sqrt(16.0)))
    assert torch.allclose(hp, torch.full((4,), float(pairwise_sq_dist(_grid(4)).mean())))
    s = build_model(ArchConfig(family="vit", variant="bsa", bsa_hy_init=3.0, bsa_hp_init=7.5))
    hy, hp = s.encoder.blocks[1].attn.bandwidths()
    assert torch.allclose(hy, torch.full((4,), 3.0)) and torch.allclose(hp, torch.full((4,), 7.5))


def test_a_card_without_the_new_keys_means_the_original_definitions():
    card = json.loads((REPO / "models" / "digits-vit-bsa.json").read_text())
    arch = card["architecture"]
    assert not any(f.name in arch for f in option_fields() if f.name != "grc_init")  # the zoo predates them
    cfg = ArchConfig.from_dict(arch)
    assert all(getattr(cfg, f.name) == f.default for f in option_fields())
    changed = dataclasses.replace(cfg, bsa_range="dot", bsa_spatial=False)
    assert ArchConfig.from_dict(json.loads(json.dumps(changed.to_dict()))) == changed


def test_arch_args_parse_typed_and_check_against_the_variant():
    assert parse_arch_args(["bsa_range=dot", "bsa_spatial=false", "bsa_hp_init=2.5", "pos_embed=null"]) == {
        "bsa_range": "dot", "bsa_spatial": False, "bsa_hp_init": 2.5, "pos_embed": None}
    for items, fragment in [(["nope=1"], "unknown architecture option"), (["bsa_range"], "expected key=value"),
                            (["bsa_hy_init=__import__('os')"], "expected a number")]:
        with pytest.raises(RobenchError, match=fragment):
            parse_arch_args(items)
    for variant, opts, fragment in [("sa", {"bsa_range": "dot"}, "for BSA variants"),
                                    ("bsa", {"grc_t": "fixed"}, "for GRC variants"),
                                    ("bsa", {"bsa_range": "cosine"}, "not one of: gauss, dot"),
                                    ("bsa", {"bsa_spatial": "no"}, "not one of: true, false"),
                                    ("bsa", {"bsa_hp_init": -1.0}, "must be a number > 0")]:
        with pytest.raises(RobenchError, match=fragment):
            check_options(variant, opts)
    check_options("bsa-grc", {"bsa_range": "dot", "grc_t": "channel", "pos_embed": True})
    with pytest.raises(RobenchError, match="even head width"):
        ArchConfig(family="vit", variant="rope", embed_dim=12, num_heads=4)


def test_models_json_lists_every_option_from_the_field_metadata(cli):
    proc = cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["variants"] == ["sa", "bsa", "grc", "bsa-grc", "alibi", "rope"]
    listed = {o["name"]: o for o in data["arch_options"]}
    assert list(listed) == [f.name for f in option_fields()]
    assert data["arch_options"] == json.loads(json.dumps(arch_options_json()))
    for f in option_fields():
        assert listed[f.name]["default"] == f.default and listed[f.name]["help"]


@pytest.mark.slow
def test_train_with_arch_args_records_them_and_evaluates(cli, tmp_path):
    out = tmp_path / "m.safetensors"
    proc = cli("train", "--task", "digits", "--variant", "bsa-grc", "--epochs", "1", "--arch-arg", "bsa_range=dot",
               "--arch-arg", "bsa_spatial=false", "--arch-arg", "grc_t=channel", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    card = Card.read(tmp_path / "m.json")
    a = card.architecture
    assert (a.bsa_range, a.bsa_spatial, a.grc_t, a.bsa_bandwidths) == ("dot", False, "channel", "learned")
    from safetensors.torch import load_file

    keys = set(load_file(str(out)))
    assert "encoder.blocks.0.attn.log_hy" in keys and "encoder.blocks.0.attn.log_hp" not in keys
    assert load_file(str(out))["encoder.blocks.0.tau"].shape == (64,)
    proc = cli("evaluate", str(out), "-n", "20", "--threat", "fgsm:eps=0.01", "--csv", str(tmp_path / "r.csv"), "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_encoder_rejects_unknown_grc_y0():
    with pytest.raises(ValueError, match="Y_0"):
        Encoder(8, 1, 2, 2.0, "sa", "grc", 0.1, 1.0, grc=GRCOptions(y0="previous"))


@pytest.mark.slow
def test_diagnose_takes_every_option_and_the_baselines(tmp_path):
    """Checkpoints with the new options load into ``robench diagnose``; their attention sensitivity equals
    the measure computed on the literal formula (same draws, same positions)."""
    from robench.checkpoint.io import save_checkpoint
    from robench.studies.diagnose.metrics import relative_sensitivity, sensitivity_inputs, token_coords
    from robench.studies.diagnose.run import SENSITIVITY, DiagnoseArgs, diagnose

    base = Card.read(REPO / "models" / "digits-vit-sa.json")
    configs = {"alibi": dict(variant="alibi"), "rope": dict(variant="rope"),
               "bsa-opts": dict(variant="bsa-grc", bsa_range="dot", bsa_bandwidths="fixed", pos_embed=True,
                                grc_t="channel", grc_sublayers="attn+mlp", grc_y0="values"),
               "bsa-nospatial": dict(variant="bsa", bsa_spatial=False)}
    paths = []
    for name, opts in configs.items():
        cfg = dataclasses.replace(base.architecture, **opts)
        torch.manual_seed(0)
        net = build_model(cfg).eval()
        path = tmp_path / f"{name}.safetensors"
        save_checkpoint(net, dataclasses.replace(base, architecture=cfg, name=name), path)
        paths.append(str(path))
    result = diagnose(DiagnoseArgs(models=paths, num_examples=8, lengths="16", draws=1, device="cpu", batch_size=8))
    for name, path in zip(configs, paths):
        rows = [r for r in result.rows if r.model in (name, path)]
        assert len(rows) == 2 * (base.architecture.depth + 1) + 1, name
        assert all(math.isfinite(r.value) for r in rows), name
        sens = next(r.value for r in rows if r.diagnostic == SENSITIVITY)
        torch.manual_seed(0)
        attn = build_model(dataclasses.replace(base.architecture, **configs[name])).encoder.blocks[0].attn.double()
        x, dx = sensitivity_inputs(16, attn.qkv.in_features, 1e-3, 0, 0)
        sq = pairwise_sq_dist(token_coords(16, "vit"))
        literal = lambda inp, **kw: literal_attention(attn, inp, sq)
        assert sens == pytest.approx(relative_sensitivity(literal, x, dx), rel=1e-8), name


@pytest.mark.slow
def test_export_carries_the_options_and_refuses_the_baselines(tmp_path):
    """Options that keep the checkpoint's keys (fixed bandwidths, fixed t, the dot kernel) would load
    strictly into a default model: the export's model_args must carry them."""
    from robench.checkpoint.export import export_checkpoint
    from robench.checkpoint.io import save_checkpoint
    from robench.engine.args import ExportArgs
    from robench.models.loading import load_model

    base = Card.read(REPO / "models" / "digits-vit-sa.json")
    cfg = dataclasses.replace(base.architecture, variant="bsa-grc", bsa_range="dot", bsa_bandwidths="fixed",
                              bsa_hp_init=0.5, grc_t="fixed", grc_init=0.4)
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    save_checkpoint(net, dataclasses.replace(base, architecture=cfg, name="opts"), tmp_path / "opts.safetensors")
    export_checkpoint(ExportArgs(checkpoint=str(tmp_path / "opts.safetensors"), out=tmp_path / "exp", to="timm"))
    model_args = json.loads((tmp_path / "exp" / "config.json").read_text())["model_args"]
    assert {k: model_args[k] for k in ("bsa_range", "bsa_bandwidths", "bsa_hp_init", "grc_t")} == {
        "bsa_range": "dot", "bsa_bandwidths": "fixed", "bsa_hp_init": 0.5, "grc_t": "fixed"}
    loaded = load_model(f"timm:{tmp_path / 'exp'}", "cpu")
    x = torch.rand(3, 1, 8, 8)
    mean, std = base.preprocessing["mean"][0], base.preprocessing["std"][0]
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net((x - mean) / std), atol=1e-6, rtol=1e-6)
    alibi = dataclasses.replace(base.architecture, variant="alibi")
    save_checkpoint(build_model(alibi), dataclasses.replace(base, architecture=alibi, name="a"), tmp_path / "a.safetensors")
    with pytest.raises(RobenchError, match="not the ALiBi/RoPE baselines"):
        export_checkpoint(ExportArgs(checkpoint=str(tmp_path / "a.safetensors"), out=tmp_path / "exp2", to="timm"))
