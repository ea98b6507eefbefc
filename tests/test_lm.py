"""Language modelling (issue 10, item 1): the causal ``lm`` family, perplexity, train/evaluate CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F

from robench.lm.corpus import LMTokenizer
from robench.lm.perplexity import contaminate, perplexity
from robench.models.config import ArchConfig
from robench.models.registry import build_model
from robench.threats.registry import build_threat
from conftest import SHARED_DATA, assert_one_line_error

WIKI = SHARED_DATA / "wikitext2"
LINES = ["the cat sat on the mat .", " ", "a dog sat on a log , and the cat ran .", "the end"]


def tiny_lm(variant: str, vocab: int = 23, context: int = 12, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ArchConfig(family="lm", variant=variant, num_classes=0, embed_dim=16, depth=2, num_heads=2,
                     vocab_size=vocab, max_length=context)
    return build_model(cfg).double().eval()


def reference_loss(net, ids: torch.Tensor) -> torch.Tensor:
    """Next-token loss with BSA written literally: softmax_{j<=i}(-||q_i-k_j||^2/h_y - (i-j)^2/h_p)."""
    x = net.tok_embed(ids)
    y0 = x
    b, n, c = x.shape
    i = torch.arange(n, dtype=x.dtype)
    spatial = (i[:, None] - i[None, :]) ** 2
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    for blk in net.encoder.blocks:
        a = blk.attn
        h, d = a.num_heads, a.head_dim
        q, k, v = a.qkv(blk.norm1(x)).view(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
        hy, hp = a.log_hy.exp()[None, :, None, None], a.log_hp.exp()[None, :, None, None]
        logits = -((q[:, :, :, None, :] - k[:, :, None, :, :]) ** 2).sum(-1) / hy - spatial / hp
        attn = logits.masked_fill(~causal, float("-inf")).softmax(-1)
        x = x + a.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
        if blk.tau is not None:
            t = torch.sigmoid(blk.tau)
            x = (1 - t) * x + t * y0
        x = x + blk.mlp(blk.norm2(x))
    logits = net.encoder.norm(x) @ net.tok_embed.weight.T
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


@pytest.mark.parametrize("variant", ["bsa", "bsa-grc"])
def test_causal_bsa_lm_loss_matches_reference_formula(variant):
    net = tiny_lm(variant)
    with torch.no_grad():  # bandwidths away from init so both kernels matter
        for blk in net.encoder.blocks:
            blk.attn.log_hp.copy_(torch.tensor([0.5, 2.0]))
            blk.attn.log_hy.add_(torch.tensor([-0.3, 0.4]))
    ids = torch.randint(0, 23, (3, 12), generator=torch.Generator().manual_seed(1))
    got = F.cross_entropy(net(ids)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    want = reference_loss(net, ids)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9), (float(got), float(want))
    # causality: the logits at position i do not depend on later tokens
    ids2 = ids.clone()
    ids2[:, 7:] = (ids2[:, 7:] + 1) % 23
    assert torch.allclose(net(ids)[:, :7], net(ids2)[:, :7], atol=1e-12)


def test_tied_output_layer_and_sa_position_embedding_only():
    sa, bsa = tiny_lm("sa"), tiny_lm("bsa")
    assert "pos_embed" in dict(sa.named_parameters()) and "pos_embed" not in dict(bsa.named_parameters())
    assert not any("head" in k for k in sa.state_dict())  # the embedding is the output layer


class Uniform(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, ids):
        return torch.zeros(*ids.shape, self.vocab)


def test_uniform_model_perplexity_is_vocabulary_size():
    stream = torch.randint(0, 997, (1000,), generator=torch.Generator().manual_seed(0))
    res = perplexity(Uniform(997), stream, context=16)
    assert res.n == 1000  # every token predicted once (the first from the <eos> context)
    assert res.ppl == pytest.approx(997, rel=1e-6)
    lo, hi = res.interval()
    assert lo == pytest.approx(997, rel=1e-6) and hi == pytest.approx(997, rel=1e-6)


def test_stride_equal_to_context_is_the_per_chunk_computation():
    net, context = tiny_lm("bsa-grc", vocab=23, context=8), 8
    stream = torch.randint(0, 23, (45,), generator=torch.Generator().manual_seed(2))
    res = perplexity(net, stream, context, stride=context)
    ids = torch.cat([torch.tensor([1]), stream])
    nll, n = 0.0, 0
    for b in range(0, 45, context):  # chunk inputs ids[b:b+L] predict ids[b+1:b+L+1]
        x, y = ids[b : b + context], ids[b + 1 : b + context + 1]
        x = x[: len(y)]
        with torch.no_grad():
            nll += float(F.cross_entropy(net(x[None])[0], y, reduction="sum"))
        n += len(y)
    assert res.n == n == 45
    assert res.ppl == pytest.approx(math.exp(nll / n), rel=1e-9)
    # the default stride (context / 2) also predicts each token exactly once, with more context
    assert perplexity(net, stream, context).n == 45


def test_sliding_window_gives_every_token_more_context():
    net = tiny_lm("sa", vocab=23, context=8)
    stream = torch.randint(0, 23, (40,), generator=torch.Generator().manual_seed(3))
    half, full = perplexity(net, stream, 8), perplexity(net, stream, 8, stride=8)
    assert half.n == full.n == 40 and half.counts.tolist()[0] == 8 and set(half.counts.tolist()[1:-1]) == {4}


def test_contamination_rate_zero_is_clean_and_rate_positive_changes_tokens():
    tok = LMTokenizer.build(LINES, 8)
    same, frac = contaminate(LINES, build_threat("word-swap:rate=0"), tok, seed=0)
    assert same == LINES and frac == 0.0
    changed, frac = contaminate(LINES * 20, build_threat("word-swap:rate=0.5"), tok, seed=0)
    assert 0.1 < frac < 0.6
    again, _ = contaminate(LINES * 20, build_threat("word-swap:rate=0.5"), tok, seed=0)
    assert again == changed  # per-line seeds from the run seed


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from conftest import run_cli

    d = tmp_path_factory.mktemp("lm")
    lines = (WIKI / "wiki.valid.tokens").read_text(encoding="utf-8").splitlines()
    (d / "train.tokens").write_text("\n".join(lines[:60]) + "\n", encoding="utf-8")
    test_lines = (WIKI / "wiki.test.tokens").read_text(encoding="utf-8").splitlines()
    (d / "test.tokens").write_text("\n".join(test_lines[:12]) + "\n", encoding="utf-8")
    out = d / "lm-bsa.safetensors"
    proc = run_cli("train", "--task", "lm", "--variant", "bsa", "--data", str(d / "train.tokens"),
                   "--eval-data", str(d / "test.tokens"), "--out", str(out), "--train-tokens", "1500",
                   "--embed-dim", "16", "--depth", "1", "--heads", "2", "--epochs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return d, out


def test_train_lm_writes_card(tiny_checkpoint):
    d, out = tiny_checkpoint
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["task"] == "language-modeling" and card["labels"] == []
    assert card["architecture"]["family"] == "lm" and card["architecture"]["attention"] == "bsa"
    pre = card["preprocessing"]
    assert pre["vocab"][:2] == ["<unk>", "<eos>"] and pre["max_length"] == 64
    assert card["training"]["train_tokens"] == 1500 and "--task lm" in card["training"]["command"]
    ev = card["evaluation"]
    assert ev["n"] > 0 and 1 < ev["perplexity"] < len(pre["vocab"]) * 2


def test_train_lm_result_is_the_perplexity_of_the_written_checkpoint(tiny_checkpoint, tmp_path):
    """TrainResult of an LM says perplexity, and it is the reloaded checkpoint's sliding-window perplexity."""
    from robench.models.loading import load_model
    from robench.training.classifier import TrainArgs, train

    d, _ = tiny_checkpoint
    args = TrainArgs(task="lm", variant="sa", data=str(d / "train.tokens"), eval_data=str(d / "test.tokens"),
                     train_tokens=600, epochs=1, embed_dim=16, depth=1, num_heads=2, threads=1)
    result = train(args, tmp_path / "lm.safetensors")
    assert result.metric == "perplexity" and len(result.history) == 1
    model = load_model(str(result.path), "cpu")
    tok = model.module.tokenizer
    stream = tok.stream((d / "test.tokens").read_text(encoding="utf-8").splitlines())
    assert result.test_metric == pytest.approx(perplexity(model.module, stream, tok.max_length).ppl, rel=1e-12)
    assert result.card.evaluation["perplexity"] == round(result.test_metric, 6)


def test_lm_card_finds_its_test_file_from_another_directory(tiny_checkpoint, cli, tmp_path):
    from conftest import REPO

    d, out = tiny_checkpoint
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["evaluation"]["dataset_path"] == str(d / "test.tokens") and card["evaluation"]["dataset_card_path"] == "test.tokens"
    proc = cli("evaluate", str(out), "--suite", "clean", "--csv", "-", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    row = next(csv.DictReader(proc.stdout.splitlines()))
    assert float(row["attacked_acc"]) == pytest.approx(card["evaluation"]["perplexity"], rel=1e-6)


def test_evaluate_lm_exports_perplexity_rows(tiny_checkpoint, cli):
    d, out = tiny_checkpoint
    proc = cli("evaluate", str(out), "--dataset", str(d / "test.tokens"), "--threat", "word-swap:rate=0.1",
               "--threat", "word-swap:rate=0", "--csv", str(d / "rows.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "perplexity, lower is better" in proc.stdout
    rows = list(csv.DictReader((d / "rows.csv").open()))
    assert [r["threat"] for r in rows] == ["none", "word-swap:rate=0.1", "word-swap:rate=0"]
    assert {r["metric"] for r in rows} == {"perplexity"}
    clean, swap, zero = (float(r["attacked_acc"]) for r in rows)
    assert zero == clean and swap != clean
    assert float(rows[1]["mean_perturbation"]) > 0 and float(rows[0]["mean_perturbation"]) == 0
    assert float(rows[0]["attacked_ci_low"]) < clean < float(rows[0]["attacked_ci_high"])
    card = json.loads(out.with_suffix(".json").read_text())
    assert int(rows[0]["n"]) == card["evaluation"]["n"]
    assert clean == pytest.approx(card["evaluation"]["perplexity"], rel=1e-6)
    from robench.results.schema import read_rows

    assert read_rows(d / "rows.csv")[0].metric == "perplexity"


def test_old_result_files_read_as_accuracy(tmp_path):
    from robench.results.schema import COLUMNS, read_rows

    row = {c: "0" for c in COLUMNS if c not in ("metric", "delta_vs_baseline", "paired_p", "paired_test", "mce")}
    path = tmp_path / "old.json"
    path.write_text(json.dumps([row]))
    assert read_rows(path)[0].metric == "accuracy"


@pytest.mark.slow
def test_lm_bad_inputs(tiny_checkpoint, cli, tmp_path):
    d, out = tiny_checkpoint
    empty = tmp_path / "empty.tokens"
    empty.write_text(" \n\n")
    assert_one_line_error(cli("evaluate", str(out), "--dataset", str(empty)), "holds no words")
    assert_one_line_error(cli("evaluate", str(out), "--dataset", str(tmp_path / "nope.tokens")), "not found")
    assert_one_line_error(cli("evaluate", str(out), "--threat", "pgd"), "does not apply to a language model")
    assert_one_line_error(cli("evaluate", str(out), "--threat", "pwws"), "does not apply to a language model")
    assert_one_line_error(cli("attack", str(out), "--threat", "word-swap"), "is a language model")
    assert_one_line_error(cli("train", "--task", "lm", "--variant", "sa", "--data", str(empty), "--eval-data",
                              str(d / "test.tokens"), "--out", str(tmp_path / "x.safetensors")), "holds no words")
    assert_one_line_error(cli("train", "--task", "lm", "--variant", "sa", "--data", str(tmp_path / "nope"),
                              "--eval-data", str(d / "test.tokens"), "--out", str(tmp_path / "x.safetensors")), "not found")
    assert_one_line_error(cli("train", "--task", "lm", "--variant", "sa", "--eval-data", str(d / "test.tokens"),
                              "--out", str(tmp_path / "x.safetensors")), "--data")


def test_train_lm_is_deterministic_on_cpu(tiny_checkpoint, tmp_path, cli):
    d, out = tiny_checkpoint
    again = tmp_path / "again.safetensors"
    proc = cli("train", "--task", "lm", "--variant", "bsa", "--data", str(d / "train.tokens"),
               "--eval-data", str(d / "test.tokens"), "--out", str(again), "--train-tokens", "1500",
               "--embed-dim", "16", "--depth", "1", "--heads", "2", "--epochs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == out.read_bytes()


def test_paired_nll_test_equals_the_paired_t_statistic_for_equal_windows():
    """With equal window sizes the clustered statistic is the one-sample t statistic of the
    per-window differences (scipy), referred to the normal law."""
    from scipy import stats

    from robench.lm.perplexity import Perplexity, paired_nll_test

    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, generator=g, dtype=torch.float64) * 50 + 100
    b = a - 0.8 + torch.randn(40, generator=g, dtype=torch.float64) * 3
    counts = torch.full((40,), 32, dtype=torch.long)
    t = stats.ttest_1samp((a - b).numpy(), 0.0).statistic
    assert paired_nll_test(Perplexity(a, counts), Perplexity(b, counts)) == pytest.approx(2 * stats.norm.sf(abs(t)), rel=1e-9)
    assert paired_nll_test(Perplexity(a, counts), Perplexity(a.clone(), counts)) == 1.0


@pytest.mark.slow
def test_evaluate_lm_with_baseline_pairs_on_the_same_stream(tiny_checkpoint, cli, tmp_path):
    d, out = tiny_checkpoint
    sa = d / "lm-sa.safetensors"
    if not sa.exists():
        proc = cli("train", "--task", "lm", "--variant", "sa", "--data", str(d / "train.tokens"),
                   "--eval-data", str(d / "test.tokens"), "--out", str(sa), "--train-tokens", "1500",
                   "--embed-dim", "16", "--depth", "1", "--heads", "2", "--epochs", "1", "--quiet")
        assert proc.returncode == 0, proc.stderr
    proc = cli("evaluate", str(out), str(sa), "--baseline", str(sa), "--threat", "word-swap:rate=0.2",
               "--csv", str(tmp_path / "rows.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = {(r["model"], r["threat"]): r for r in csv.DictReader((tmp_path / "rows.csv").open())}
    for threat in ("none", "word-swap:rate=0.2"):
        mine, base = rows[("lm-bsa", threat)], rows[("lm-sa", threat)]
        assert mine["baseline"] == "lm-sa" and base["baseline"] == "" and base["paired_p"] == base["paired_test"] == ""
        assert float(mine["delta_vs_baseline"]) == pytest.approx(float(mine["attacked_acc"]) - float(base["attacked_acc"]), abs=2e-6)
        assert 0.0 <= float(mine["paired_p"]) <= 1.0 and mine["paired_test"] == "window-clustered-z"
    # a model with another vocabulary reads another stream: pairing is refused
    other = tmp_path / "other.tokens"
    other.write_text("\n".join((WIKI / "wiki.valid.tokens").read_text(encoding="utf-8").splitlines()[200:260]) + "\n")
    lm2 = tmp_path / "lm-other.safetensors"
    proc = cli("train", "--task", "lm", "--variant", "sa", "--data", str(other), "--eval-data", str(d / "test.tokens"),
               "--out", str(lm2), "--train-tokens", "1500", "--embed-dim", "16", "--depth", "1", "--heads", "2",
               "--epochs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert_one_line_error(cli("evaluate", str(out), str(lm2), "--baseline", str(lm2), "--threat", "word-swap:rate=0.1"),
                          "read different token streams")


@pytest.mark.slow
def test_diagnose_language_model(tiny_checkpoint, cli, tmp_path):
    """diagnose on an LM: windows of the token file, token-replacement SNR, causal sensitivity."""
    from robench.studies.diagnose.data import lm_windows
    from robench.models.loading import load_model

    d, out = tiny_checkpoint
    model = load_model(str(out), torch.device("cpu"))
    stream = model.module.tokenizer.stream((d / "test.tokens").read_text(encoding="utf-8").splitlines())
    ctx = model.module.tokenizer.max_length
    ds = lm_windows(model, str(d / "test.tokens"), 3, seed=0)
    assert len(ds) == 3 and ds.ids == sorted(ds.ids)
    for i, row in zip(ds.ids, ds.inputs):
        assert torch.equal(row, stream[i * ctx : (i + 1) * ctx])
    assert len(lm_windows(model, str(d / "test.tokens"), None, seed=0)) == len(stream) // ctx
    proc = cli("diagnose", str(out), "--dataset", str(d / "test.tokens"), "-n", "4", "--lengths", "16,32",
               "--draws", "1", "--csv", str(tmp_path / "d.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    depth = json.loads(out.with_suffix(".json").read_text())["architecture"]["depth"]
    assert [r["layer"] for r in rows if r["diagnostic"] == "token_uniformity"] == [str(i) for i in range(depth + 1)]
    assert [r["n_tokens"] for r in rows if r["diagnostic"] == "attention_sensitivity"] == ["16", "32"]
    proc = cli("diagnose", str(out), "--dataset", str(d / "test.tokens"), "-n", "4", "--noise", "0", "--lengths", "16",
               "--draws", "1", "--csv", str(tmp_path / "d0.csv"))
    assert proc.returncode == 0, proc.stderr
    snr = [r["value"] for r in csv.DictReader((tmp_path / "d0.csv").open()) if r["diagnostic"] == "snr"]
    assert snr and all(v == "inf" for v in snr)  # no replaced token: noisy states equal clean ones


def test_causal_sensitivity_uses_the_causal_mask():
    from robench.studies.diagnose.metrics import attention_sensitivity, relative_sensitivity, sensitivity_inputs
    from robench.models.attention import Attention

    torch.manual_seed(0)
    attn = Attention(16, 2, kind="sa").double().eval()
    x, dx = sensitivity_inputs(32, 16, 1e-3, 0, 0)
    want = relative_sensitivity(attn, x.double(), dx.double(), causal=True)
    assert attention_sensitivity(attn, "text", [32], draws=1, causal=True)[32] == pytest.approx(want, rel=1e-12)
    assert want != pytest.approx(relative_sensitivity(attn, x.double(), dx.double()), rel=1e-3)
