"""GRC: t = 0 is exactly the standard residual; the update rule against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from robench.models import ArchConfig, build_model
from robench.models.block import Block


@pytest.mark.parametrize("family", ["vit", "text"])
def test_grc_with_t_zero_equals_standard_model_exactly(family):
    kw = dict(vocab_size=40, max_length=10) if family == "text" else {}
    torch.manual_seed(0)
    grc = build_model(ArchConfig(family=family, variant="grc", depth=3, **kw)).eval()
    sa = build_model(ArchConfig(family=family, variant="sa", depth=3, **kw)).eval()
    state = {k: v for k, v in grc.state_dict().items() if not k.endswith(".tau")}
    sa.load_state_dict(state)
    with torch.no_grad():
        for blk in grc.encoder.blocks:
            blk.tau.fill_(float("-inf"))  # sigmoid(-inf) == 0 exactly
    x = torch.rand(4, 1, 8, 8) if family == "vit" else torch.randint(2, 40, (4, 9))
    with torch.no_grad():
        assert torch.equal(grc(x), sa(x))


def test_grc_init_is_one_tenth():
    m = build_model(ArchConfig(family="vit", variant="grc", depth=3, grc_init=0.1))
    for blk in m.encoder.blocks:
        assert math.isclose(float(blk.t.detach()), 0.1, rel_tol=1e-6)


def test_grc_update_rule_by_hand():
    torch.manual_seed(1)
    blk = Block(16, 2, 2.0, attention="sa", residual="grc").double()
    with torch.no_grad():
        blk.tau.fill_(0.3)
    x, y0 = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64)
    t = 1 / (1 + math.exp(-0.3))
    a = (1 - t) * (x + blk.attn(blk.norm1(x))) + t * y0  # X <- (1-t)(X + Attn(LN X)) + t Y0
    expected = a + blk.mlp(blk.norm2(a))  # the MLP keeps the standard residual
    torch.testing.assert_close(blk(x, y0), expected, atol=1e-12, rtol=1e-12)


def test_grc_pulls_toward_the_first_block_input():
    """Y_0 is the input of the first block for every layer, not the previous layer's input."""
    torch.manual_seed(2)
    m = build_model(ArchConfig(family="vit", variant="grc", depth=2)).double().eval()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    y0 = m.embed(x)
    _, hidden = m.encoder(y0, sq_dist=m.sq_dist, return_hidden=True)
    b0, b1 = m.encoder.blocks
    torch.testing.assert_close(hidden[1], b0(y0, y0, sq_dist=m.sq_dist))
    torch.testing.assert_close(hidden[2], b1(hidden[1], y0, sq_dist=m.sq_dist))
