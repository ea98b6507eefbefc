"""``robench diagnose``: each measure against an independent reference on hand-built cases, plus the CLI."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from conftest import assert_one_line_error
from robench.checkpoint.card import Card
from robench.data.base import IMAGE, TEXT, Dataset
from robench.studies.diagnose.hidden import hidden_states
from robench.studies.diagnose.metrics import (
    attention_sensitivity, grid_shape, relative_sensitivity, sensitivity_inputs, snr_db, token_coords, token_uniformity,
)
from robench.studies.diagnose.noise import gaussian_pixel_noise, replace_tokens
from robench.studies.diagnose.run import (
    CSV_COLUMNS, SENSITIVITY, SNR, UNIFORMITY, DiagnoseArgs, layer_diagnostics, parse_lengths,
)
from robench.errors import RobenchError
from robench.models.loading import LoadedModel, load_model
from robench.models.attention import Attention
from robench.models.config import ArchConfig
from robench.models.vit import RobenchViT
from robench.models.wrappers import ImageClassifier
from robench.seeds import example_seed

# ----------------------------------------------------------------------------------------------
# helpers: tiny hand-built image models (4x4 images, 2x2 patches -> 4 patch tokens + CLS)


def tiny_vit(variant: str, seed: int = 0) -> RobenchViT:
    torch.manual_seed(seed)
    cfg = ArchConfig(family="vit", variant=variant, num_classes=2, embed_dim=8, depth=3, num_heads=2,
                     img_size=4, patch_size=2, in_chans=1)
    return RobenchViT(cfg).eval()


def make_identity_blocks(net: RobenchViT) -> None:
    """Zero each block's attention output and MLP output: with the standard residual a block is the identity."""
    with torch.no_grad():
        for blk in net.encoder.blocks:
            for lin in (blk.attn.proj, blk.mlp.fc2):
                lin.weight.zero_()
                lin.bias.zero_()


def pixel_patch_embed(net: RobenchViT, cls: torch.Tensor) -> None:
    """Token of a patch = its 4 pixels (row-major) in dims 0..3, zero elsewhere; CLS = ``cls``."""
    with torch.no_grad():
        net.patch_embed.weight.zero_()
        net.patch_embed.bias.zero_()
        for k in range(4):
            net.patch_embed.weight[k, 0, k // 2, k % 2] = 1.0
        net.cls_token.copy_(cls.view(1, 1, -1))
        if net.pos_embed is not None:
            net.pos_embed.zero_()


def as_loaded(net: RobenchViT, name: str = "tiny") -> LoadedModel:
    cfg = net.cfg
    card = Card(task=IMAGE, labels=["a", "b"], architecture=cfg,
                preprocessing={"kind": "image", "channels": 1, "size": [4, 4], "mean": [0.0], "std": [1.0]})
    return LoadedModel(name=name, module=ImageClassifier(net, [0.0], [1.0]).eval(), card=card, sha256="")


def image_dataset(x: torch.Tensor) -> Dataset:
    n = len(x)
    return Dataset(name="hand", task=IMAGE, split="test", labels=["a", "b"], inputs=x,
                   targets=torch.zeros(n, dtype=torch.long), ids=list(range(n)), sha256="")


def pairwise_cosine_loop(h: torch.Tensor) -> float:
    """Direct O(N^2) reference: mean cos(h_i, h_j) over ordered pairs i != j of one sequence (N, D)."""
    n, total = len(h), 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += float(torch.nn.functional.cosine_similarity(h[i], h[j], dim=0, eps=1e-12))
    return total / (n * (n - 1))


# ----------------------------------------------------------------------------------------------
# token uniformity


def test_uniformity_of_equal_tokens_is_one_and_of_orthogonal_tokens_is_zero():
    v = torch.randn(16, dtype=torch.float64)
    equal = torch.stack([v * s for s in (0.5, 1.0, 3.0, 7.0)])[None]  # parallel, different lengths
    assert token_uniformity(equal).item() == pytest.approx(1.0, abs=1e-12)
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))
    ortho = (q[:6] * torch.tensor([0.3, 1, 2, 5, 0.1, 9], dtype=torch.float64)[:, None])[None]
    assert token_uniformity(ortho).item() == pytest.approx(0.0, abs=1e-12)


def test_uniformity_matches_the_pairwise_loop_with_a_padding_mask():
    torch.manual_seed(1)
    h = torch.randn(3, 7, 5) + 0.7  # a shared offset: positive mean cosine
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5], dtype=torch.bool)
    got = token_uniformity(h, mask)
    for b in range(3):
        assert got[b].item() == pytest.approx(pairwise_cosine_loop(h[b][mask[b]].double()), abs=1e-10)
    single = token_uniformity(h[:1], torch.tensor([[1] + [0] * 6], dtype=torch.bool))
    assert math.isnan(single.item())  # fewer than 2 tokens: undefined, skipped by the averages


def test_equal_tokens_stay_equal_through_random_bsa_grc_blocks():
    """All tokens equal at the embedding -> every attention row averages equal values, the MLP is per
    token and GRC mixes toward equal Y_0: uniformity is 1 at every layer, whatever the (random) weights."""
    net = tiny_vit("bsa-grc", seed=3)
    v = torch.randn(8)
    with torch.no_grad():
        net.patch_embed.weight.zero_()
        net.patch_embed.bias.copy_(v)
        net.cls_token.copy_(v.view(1, 1, -1))
    model = as_loaded(net)
    hidden, mask = hidden_states(model, torch.rand(5, 1, 4, 4))
    assert mask is None and len(hidden) == 4
    assert not torch.allclose(hidden[0], hidden[-1])  # the blocks do change the tokens
    for h in hidden:
        assert torch.allclose(token_uniformity(h), torch.ones(5, dtype=torch.float64), atol=1e-6)
    rows = layer_diagnostics(model, image_dataset(torch.rand(5, 1, 4, 4)), noise=0.1, seed=0, batch_size=2)
    uni = [r.value for r in rows if r.diagnostic == UNIFORMITY]
    assert uni == pytest.approx([1.0] * 4, abs=1e-6)


def test_orthogonal_tokens_through_identity_blocks_have_zero_uniformity():
    net = tiny_vit("sa")
    make_identity_blocks(net)
    pixel_patch_embed(net, cls=torch.eye(8)[4] * 2.5)
    x = torch.zeros(3, 1, 4, 4)
    for p in range(4):  # patch p (row-major on the 2x2 grid) lights only its in-patch pixel p -> token e_p
        r, c = 2 * (p // 2) + p // 2, 2 * (p % 2) + p % 2
        x[:, 0, r, c] = torch.tensor([0.2, 0.6, 1.0])
    model = as_loaded(net)
    hidden, _ = hidden_states(model, x)
    assert all(torch.equal(h, hidden[0]) for h in hidden)  # identity blocks
    assert pairwise_cosine_loop(hidden[0][0].double()) == pytest.approx(0.0, abs=1e-12)
    rows = layer_diagnostics(model, image_dataset(x), noise=0.0, seed=0, batch_size=8)
    assert [r.value for r in rows if r.diagnostic == UNIFORMITY] == pytest.approx([0.0] * 4, abs=1e-12)
    assert all(r.value == math.inf for r in rows if r.diagnostic == SNR)  # noise 0: identical states


# ----------------------------------------------------------------------------------------------
# SNR


def test_snr_hand_computed_values():
    clean = torch.ones(1, 2, 2)
    assert snr_db(clean, clean.clone()) == math.inf
    assert snr_db(clean, clean + 0.1) == pytest.approx(20.0)  # 4 / (4 * 0.01) = 100
    # two examples: signal 4 + 4, noise 0.04 + 0.4 -> 10 log10(8 / 0.44) (powers averaged, not the dBs)
    clean2 = torch.ones(2, 2, 2)
    noisy2 = clean2 + torch.tensor([0.1, math.sqrt(0.1)]).view(2, 1, 1)
    assert snr_db(clean2, noisy2) == pytest.approx(10 * math.log10(8 / 0.44))
    # masked tokens count neither as signal nor as noise
    mask = torch.tensor([[True, False]])
    noisy = clean.clone()
    noisy[0, 1] += 100.0
    assert snr_db(clean, noisy, mask) == math.inf
    noisy[0, 0, 0] += 1.0  # signal 2, noise 1
    assert snr_db(clean, noisy, mask) == pytest.approx(10 * math.log10(2.0))


def test_snr_through_identity_blocks_equals_the_pixel_space_snr():
    """Pixels map one-to-one onto token entries and the blocks are identities: at every layer the hidden
    SNR is 10 log10((||x||^2 + B ||cls||^2) / ||x~ - x||^2), computed here in pixel space."""
    net = tiny_vit("grc")
    make_identity_blocks(net)
    with torch.no_grad():  # GRC mixes toward Y_0, which is X itself here: still the identity
        for blk in net.encoder.blocks:
            blk.tau.fill_(0.0)
    cls = torch.eye(8)[5] * 0.5
    pixel_patch_embed(net, cls)
    torch.manual_seed(0)
    x = torch.rand(6, 1, 4, 4)
    sigma, seed = 0.2, 7
    rows = layer_diagnostics(as_loaded(net), image_dataset(x), noise=sigma, seed=seed, batch_size=4)
    noisy = gaussian_pixel_noise(x, sigma, [example_seed(seed, i) for i in range(6)])
    signal = float(x.double().pow(2).sum() + 6 * cls.double().pow(2).sum())
    want = 10 * math.log10(signal / float((noisy.double() - x.double()).pow(2).sum()))
    assert [r.value for r in rows if r.diagnostic == SNR] == pytest.approx([want] * 4, rel=1e-9)


def test_noise_functions_are_seeded_and_bounded():
    x = torch.rand(3, 1, 4, 4)
    a = gaussian_pixel_noise(x, 0.5, [1, 2, 3])
    assert torch.equal(a, gaussian_pixel_noise(x, 0.5, [1, 2, 3]))
    assert torch.equal(a[1:], gaussian_pixel_noise(x[1:], 0.5, [2, 3]))  # per example, not per batch
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    assert torch.equal(gaussian_pixel_noise(x, 0.0, [1, 2, 3]), x)
    mid = torch.full((4, 3, 32, 32), 0.5)  # far from the clamp: the noise is N(0, sigma^2) per pixel
    diff = gaussian_pixel_noise(mid, 0.05, [4, 5, 6, 7]) - mid
    assert abs(float(diff.mean())) < 0.002 and float(diff.std()) == pytest.approx(0.05, rel=0.03)
    ids = torch.tensor([[5, 6, 7, 8, 1, 0, 0], [9, 9, 9, 0, 0, 0, 0]])
    assert torch.equal(replace_tokens(ids, 0.0, 12, [1, 2]), ids)
    full = replace_tokens(ids, 1.0, 12, [1, 2])
    real = ids != 0
    assert torch.equal(full == 0, ~real)  # padding untouched, nothing becomes padding
    assert bool((full[real] != ids[real]).all())  # every real token changed
    assert int(full[real].min()) >= 2  # never PAD or UNK
    assert torch.equal(full, replace_tokens(ids, 1.0, 12, [1, 2]))


def test_text_model_snr_is_infinite_without_noise_and_finite_with_it():
    model = load_model("wordnet-text-sa")
    texts = ["a small genus of plants", "any of various flowers used in the tropics", "a dog"]
    ds = Dataset(name="hand", task=TEXT, split="test", labels=model.labels, inputs=texts,
                 targets=torch.zeros(3, dtype=torch.long), ids=[0, 1, 2], sha256="")
    depth = model.card.architecture.depth
    clean = layer_diagnostics(model, ds, noise=0.0, seed=0, batch_size=2)
    assert [r.layer for r in clean if r.diagnostic == SNR] == list(range(depth + 1))
    assert all(r.value == math.inf for r in clean if r.diagnostic == SNR)
    noisy = layer_diagnostics(model, ds, noise=0.5, seed=0, batch_size=2)
    assert all(math.isfinite(r.value) for r in noisy)
    ids = model.module.encode(texts)
    hidden, mask = hidden_states(model, ids)
    assert torch.equal(mask, torch.cat([torch.ones(3, 1, dtype=torch.bool), ids != 0], dim=1))
    want = sum(pairwise_cosine_loop(hidden[0][b][mask[b]].double()) for b in range(3)) / 3
    assert clean[0].diagnostic == UNIFORMITY and clean[0].value == pytest.approx(want, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# attention sensitivity


def uniform_attention(kind: str, dim: int = 8, log_hp: float = 60.0) -> Attention:
    """q = k = 0 and v = proj = identity, no biases: SA attends uniformly and A(x)_i = mean_j x_j; BSA too
    when h_p is huge (spatial term ~0), and BSA is the identity when h_p is tiny (only j = i survives)."""
    attn = Attention(dim, num_heads=2, kind=kind).double()
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[2 * dim:] = torch.eye(dim)
        attn.proj.weight.copy_(torch.eye(dim))
        attn.proj.bias.zero_()
        if kind == "bsa":
            attn.log_hp.fill_(log_hp)
    return attn


def mean_formula(x: torch.Tensor, dx: torch.Tensor) -> float:
    """Sensitivity of A(x) = broadcast mean over tokens: (||mean dx|| / ||mean x||) / (||dx|| / ||x||)."""
    return float((dx.mean(1).norm() / x.mean(1).norm()) / (dx.norm() / x.norm()))


def test_sensitivity_of_uniform_attention_matches_the_mean_formula():
    attn = uniform_attention("sa")
    x, dx = sensitivity_inputs(32, 8, delta=1e-2, seed=0, draw=0)
    assert float(dx.norm() / x.norm()) == pytest.approx(1e-2)
    assert relative_sensitivity(attn, x, dx) == pytest.approx(mean_formula(x, dx), rel=1e-9)
    assert relative_sensitivity(attn, x, 0.3 * x) == pytest.approx(1.0, rel=1e-12)  # linear and homogeneous
    got = attention_sensitivity(attn, "text", [16, 64], delta=1e-3, draws=3, seed=5)
    for n, value in got.items():
        want = sum(mean_formula(*sensitivity_inputs(n, 8, 1e-3, 5, d)) for d in range(3)) / 3
        assert value == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("family", ["vit", "text"])
def test_bsa_sensitivity_in_its_uniform_and_local_limits(family):
    lengths = [16, 32]
    wide = attention_sensitivity(uniform_attention("bsa", log_hp=60.0), family, lengths, draws=2, seed=1)
    for n, value in wide.items():
        want = sum(mean_formula(*sensitivity_inputs(n, 8, 1e-3, 1, d)) for d in range(2)) / 2
        assert value == pytest.approx(want, rel=1e-6)
    local = attention_sensitivity(uniform_attention("bsa", log_hp=-8.0), family, lengths, draws=2, seed=1)
    assert list(local.values()) == pytest.approx([1.0, 1.0], rel=1e-9)  # A(x) = x


def test_grids_for_image_lengths():
    assert [grid_shape(n) for n in (64, 128, 2048, 36, 67)] == [(8, 8), (8, 16), (32, 64), (6, 6), (1, 67)]
    coords = token_coords(128, "vit")
    assert coords.shape == (128, 2) and len({tuple(c) for c in coords.tolist()}) == 128
    assert coords[:, 0].max() == 7 and coords[:, 1].max() == 15
    assert torch.equal(token_coords(5, "text")[:, 0], torch.arange(5))


def test_vit_hidden_states_do_not_change_the_output():
    net = tiny_vit("bsa-grc", seed=2)
    x = torch.randn(3, 1, 4, 4)
    out, hidden = net.forward_features(x, return_hidden=True)
    assert torch.equal(out, net.forward_features(x))
    assert torch.equal(net.encoder.norm(hidden[-1]), out)
    assert torch.equal(hidden[0], net.embed(x))


# ----------------------------------------------------------------------------------------------
# arguments and the command


def test_bad_arguments_are_one_line_errors():
    assert parse_lengths("256, 64,128") == (64, 128, 256)
    for bad, fragment in [("64,x", "not an integer"), ("1", "out of range"), ("64,64", "given twice"),
                          ("", "comma-separated"), ("64,,128", "comma-separated"), ("8192", "out of range")]:
        with pytest.raises(RobenchError, match=fragment):
            parse_lengths(bad)
    with pytest.raises(RobenchError, match="--noise"):
        DiagnoseArgs(models=["digits-vit-sa"], noise=-0.1)
    with pytest.raises(RobenchError, match="--delta"):
        DiagnoseArgs(models=["digits-vit-sa"], delta=0.0)


@pytest.mark.slow
def test_cli_writes_csv_and_png(cli, tmp_path):
    out_csv, out_png = tmp_path / "d.csv", tmp_path / "d.png"
    proc = cli("diagnose", "digits-vit-sa", "-n", "8", "--lengths", "16,64", "--draws", "1", "--device", "cpu",
               "--csv", str(out_csv), "--plot", str(out_png))
    assert proc.returncode == 0, proc.stderr
    assert "token uniformity" in proc.stdout and "N=64" in proc.stdout
    with open(out_csv, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    depth = 4
    assert len(rows) == 2 * (depth + 1) + 2
    assert {r["model"] for r in rows} == {"digits-vit-sa"}
    by = lambda d: [r for r in rows if r["diagnostic"] == d]
    assert [int(r["layer"]) for r in by(UNIFORMITY)] == list(range(depth + 1))
    assert {r["unit"] for r in by(SNR)} == {"dB"} and all(r["n_tokens"] == "" for r in by(SNR))
    assert [int(r["n_tokens"]) for r in by(SENSITIVITY)] == [16, 64] and all(r["layer"] == "" for r in by(SENSITIVITY))
    assert all(-1 <= float(r["value"]) <= 1 for r in by(UNIFORMITY))
    assert all(math.isfinite(float(r["value"])) and float(r["value"]) > 0 for r in by(SNR) + by(SENSITIVITY))
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, fragment", [
    (["digits-vit-sa", "--lengths", "64,abc"], "'abc' is not an integer"),
    (["timm:resnet18"], "diagnose needs a robench architecture"),
    (["wordnet-text-sa", "--noise", "1.5"], "token replacement rate"),
])
def test_cli_bad_input(cli, args, fragment):
    assert_one_line_error(cli("diagnose", *args, "--device", "cpu"), fragment)


def test_cli_csv_to_stdout_is_the_only_output(cli, tmp_path):
    proc = cli("diagnose", "digits-vit-bsa", "-n", "8", "--lengths", "16", "--draws", "1", "--device", "cpu",
               "--csv", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and all(len(l.split(",")) == len(CSV_COLUMNS) for l in lines)
    assert [l.split(",")[1] for l in lines[1:]].count("attention_sensitivity") == 1
    assert list(tmp_path.iterdir()) == []
