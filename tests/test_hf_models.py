"""``hf:DIR`` image classifiers and causal LMs: robench's numbers against the libraries' own forward passes.

Every model is built here with random weights and tiny configs (tests/hfdirs.py) and saved with
``save_pretrained``; nothing is downloaded. References are written with transformers alone:
``model(**processor(images, return_tensors="pt")).logits`` for images (PIL images converted to RGB,
as the pipelines load them), a hand-written sliding-window loop over ``model(input_ids).logits`` for
perplexity. Tolerances: logits 1e-5 absolute (float32 forward passes of differently batched inputs,
normalisation folded into [0, 1] pixel space); perplexities 1e-5 relative.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_one_line_error
from hfdirs import deit_dir, gpt2_dir, gpt2_tokenizer, vit_dir, wiki_lines
from robench.errors import RobenchError

LABELS = ["0", "1", "2", "3"]
LOGIT_ATOL = 1e-5
PPL_REL = 1e-5


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> dict[str, Path]:
    """Two image classifiers (ViT squashing to 32 px, DeiT resizing to 40 then centre-cropping 32), an
    image folder of 24 mixed-size PNG/JPEGs, two GPT-2s sharing one tokenizer (and one with a shorter
    context), a WikiText-2 excerpt and a plain text file."""
    from imagetrees import make_tree

    d = tmp_path_factory.mktemp("hf")
    tok = gpt2_tokenizer()
    paths = {"vit": vit_dir(d / "vit", LABELS), "deit": deit_dir(d / "deit", LABELS),
             "gpt": gpt2_dir(d / "gpt", tok, seed=0), "gpt_b": gpt2_dir(d / "gpt_b", tok, seed=1),
             "gpt32": gpt2_dir(d / "gpt32", tok, seed=2, n_positions=32), "images": d / "images",
             "wiki": d / "excerpt.tokens", "plain": d / "plain.txt"}
    make_tree(paths["images"], LABELS, 6, seed=5)
    paths["wiki"].write_text("\n".join(wiki_lines("wiki.test.tokens", 0, 30)) + "\n", encoding="utf-8")
    paths["plain"].write_text("The cat sat on the mat, and the dog sat by the door.\n\nA second paragraph: plain "
                              "text, with punctuation!\nIt ends here.\n", encoding="utf-8")
    return paths


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@torch.no_grad()
def library_logits(d: Path, files: list[Path]) -> torch.Tensor:
    """transformers alone: the model and processor of ``d`` on the files, RGB as the pipelines load them."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(d, local_files_only=True).eval()
    processor = AutoImageProcessor.from_pretrained(d, local_files_only=True)
    images = [Image.open(f).convert("RGB") for f in files]
    return model(**processor(images, return_tensors="pt")).logits


@pytest.mark.parametrize("kind,workers", [("vit", 0), ("deit", 1)])
def test_image_logits_equal_the_library_forward(hf, kind, workers):
    """robench's data path (the processor as streamed transform, in a decoding worker for DeiT) and
    wrapper (normalisation folded into [0, 1] pixels) give the library's logits, per example."""
    import robench
    from robench.data.loader import Feed
    from robench.data.preprocess import from_contract
    from robench.data.registry import load_dataset

    model = robench.load_model(f"hf:{hf[kind]}")
    assert model.task == "image-classification" and model.labels == LABELS
    pre = from_contract(model.card.preprocessing)
    assert (pre.channels, pre.size) == (3, (32, 32))  # DeiT: its 32 px crop, not its 40 px resize
    ds = load_dataset(str(hf["images"]))
    files = [Path(ds.inputs.where(i)) for i in range(len(ds))]
    assert sorted(files) == image_files(hf["images"]) and {f.suffix for f in files} == {".png", ".jpg"}
    x = torch.cat([b.x for b in Feed(pre, torch.device("cpu"), workers).batches(ds, [range(0, 10), range(10, len(ds))])])
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1  # eps is measured in these pixels
    with torch.no_grad():
        got = model.module(x)
    want = library_logits(hf[kind], files)
    assert float(want.std()) > 1e-3  # the reference is not a constant
    torch.testing.assert_close(got, want, atol=LOGIT_ATOL, rtol=0)
    steps = {"vit": "ViTImageProcessor: resize 32 bilinear", "deit": "DeiTImageProcessor: resize 40 bicubic, center crop 32"}
    assert pre.describe().startswith(steps[kind])


def test_pixel_normalisation_folds_rescale_and_normalize(hf, tmp_path):
    """A processor that does not rescale (0..255 inputs) or normalise: the wrapper's constants say so."""
    import shutil

    import robench

    d = tmp_path / "raw"
    shutil.copytree(hf["vit"], d)
    cfg = json.loads((d / "preprocessor_config.json").read_text())
    (d / "preprocessor_config.json").write_text(json.dumps({**cfg, "do_rescale": False, "do_normalize": False}))
    module = robench.load_model(f"hf:{d}").module
    assert module.mean.flatten().tolist() == [0.0] * 3 and module.std.flatten().tolist() == pytest.approx([1 / 255] * 3)
    files = image_files(hf["images"])[:4]
    from robench.data.hf_images import HFImageTransform

    x = torch.stack([HFImageTransform(str(d))(__import__("PIL.Image").Image.open(f).convert("RGB")) for f in files])
    with torch.no_grad():
        torch.testing.assert_close(module(x.float() / 255), library_logits(d, files), atol=LOGIT_ATOL, rtol=0)


@pytest.mark.slow
def test_evaluate_cli_under_fgsm_and_pgd(hf, tmp_path, cli):
    """The CLI end to end: exit 0, clean predictions (records) and clean accuracy (row) are the
    library forward's argmax, and both attacks stay in their eps ball in [0, 1] pixels."""
    from robench.results.store import records_path

    out, rows_file = tmp_path / "records", tmp_path / "rows.json"
    proc = cli("evaluate", f"hf:{hf['vit']}", "--dataset", str(hf["images"]), "--threat", "fgsm:eps=4/255",
               "--threat", "pgd:eps=4/255,steps=3", "--device", "cpu", "--out", str(out), "--json", str(rows_file))
    assert proc.returncode == 0, proc.stderr
    assert "image processor" not in proc.stderr  # transformers' notices stay out of robench's output
    rows = {r["threat"].split(":")[0]: r for r in json.loads(rows_file.read_text())}
    assert set(rows) == {"none", "fgsm", "pgd"}
    from robench.data.registry import load_dataset

    ds = load_dataset(str(hf["images"]))
    files = [Path(ds.inputs.where(i)) for i in range(len(ds))]
    pred = library_logits(hf["vit"], files).argmax(-1)
    labels = torch.tensor([int(f.parent.name) for f in files])
    clean = [json.loads(l) for l in records_path(out, f"hf:{hf['vit']}", "none").read_text().splitlines()]
    assert [r["clean_pred"] for r in clean] == pred.tolist() and [r["label"] for r in clean] == labels.tolist()
    assert rows["none"]["clean_acc"] == round(float((pred == labels).float().mean()), 6)
    assert rows["none"]["preprocessing"].startswith("ViTImageProcessor: resize 32 bilinear")
    for name in ("fgsm", "pgd"):
        assert rows[name]["clean_acc"] == rows["none"]["clean_acc"] and rows[name]["attacked_acc"] <= rows[name]["clean_acc"]
        recs = [json.loads(l) for l in records_path(out, f"hf:{hf['vit']}", rows[name]["threat"]).read_text().splitlines()]
        assert max(r["linf"] for r in recs) <= 4 / 255 + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["apgd:steps=2", "pgd-l2:eps=0.5,steps=2", "square:queries=20", "spsa:iters=2,samples=8",
                                  "corruption:name=fog"])
def test_other_image_threats_run_on_an_hf_model(hf, spec):
    """The other image threats run through the same wrapper (examples correct when clean only)."""
    import robench
    from robench.engine.args import EvaluateArgs

    rows = robench.evaluate(EvaluateArgs(models=[f"hf:{hf['deit']}"], dataset=str(hf["images"]), threats=[spec],
                                         device="cpu", workers=0))
    assert [r.threat.split(":")[0] for r in rows] == ["none", spec.split(":")[0]]
    assert 0 <= rows[1].attacked_acc <= rows[0].clean_acc


def test_geometry_overrides_are_refused(hf):
    import robench
    from robench.data.preprocess import from_contract

    pre = from_contract(robench.load_model(f"hf:{hf['vit']}").card.preprocessing)
    assert pre.with_overrides() is pre
    for kw in ({"img_size": 64}, {"crop_pct": 0.9}, {"interpolation": "bicubic"}):
        with pytest.raises(RobenchError, match="do not apply to an hf: image model"):
            pre.with_overrides(**kw)


# ---- causal language models ---------------------------------------------------------------------------


def hand_stream(tok, lines: list[str]) -> torch.Tensor:
    """GPT-2 style: each line's ids, then the newline token; one <|endoftext|> before the whole stream."""
    newline = tok.encode("\n")
    ids = [tok.eos_token_id]
    for line in lines:
        ids += tok.encode(line) + newline
    return torch.tensor(ids)


@torch.no_grad()
def hand_perplexity(d: Path, lines: list[str], context: int, limit: int | None = None) -> tuple[float, int]:
    """Sliding windows of ``context`` every ``context // 2`` tokens, each token scored once, exp(mean NLL)
    (over the first ``limit`` tokens of the stream if given)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(d, local_files_only=True).eval()
    ids = hand_stream(AutoTokenizer.from_pretrained(d, local_files_only=True), lines)
    ids = ids if limit is None else ids[: limit + 1]
    t, stride = len(ids) - 1, context // 2  # t predictions: ids[1:] from what precedes them
    nll, n, prev_end = 0.0, 0, 0
    for begin in range(0, t, stride):
        end = min(begin + context, t)
        new = end - prev_end  # targets of this window not scored by an earlier one
        logits = model(ids[None, begin:end]).logits[0]
        nll += float(F.cross_entropy(logits[-new:].double(), ids[begin + 1 : end + 1][-new:], reduction="sum"))
        n, prev_end = n + new, end
        if end == t:
            break
    assert n == t
    return math.exp(nll / n), n


def lm_rows(hf, *specs, dataset="wiki", **kw):
    import robench
    from robench.engine.args import EvaluateArgs

    return robench.evaluate(EvaluateArgs(models=[f"hf:{hf[s]}" for s in specs], dataset=str(hf[dataset]), device="cpu",
                                         **{"suite": "clean", **kw}))


def test_perplexity_equals_a_hand_written_sliding_window_loop(hf):
    """Plain text, with the model's context (64) and with --lm-context 8 (several windows)."""
    lines = hf["plain"].read_text(encoding="utf-8").splitlines()
    for context in (64, 8):
        want, n = hand_perplexity(hf["gpt"], lines, context)
        (row,) = lm_rows(hf, "gpt", dataset="plain", lm_context=None if context == 64 else context)
        assert row.metric == "perplexity" and row.task == "language-modeling" and row.n == n
        assert row.attacked_acc == pytest.approx(want, rel=PPL_REL) and row.clean_acc == row.attacked_acc
        assert row.preprocessing.startswith("hf tokenizer GPT2TokenizerFast")
        assert row.preprocessing.endswith(f"context {context}, stride {context // 2}")


@pytest.mark.slow
def test_perplexity_on_a_wikitext_excerpt(hf):
    lines = hf["wiki"].read_text(encoding="utf-8").splitlines()
    want, n = hand_perplexity(hf["gpt"], lines, 64)
    (row,) = lm_rows(hf, "gpt")
    assert row.n == n > 2000 and row.attacked_acc == pytest.approx(want, rel=PPL_REL)
    # -n N: the first N tokens of the stream
    (row,) = lm_rows(hf, "gpt", num_examples=500)
    assert row.n == 500 and row.attacked_acc == pytest.approx(hand_perplexity(hf["gpt"], lines, 64, limit=500)[0], rel=PPL_REL)


def test_lm_context_above_the_model_is_refused(hf):
    with pytest.raises(RobenchError, match="--lm-context 65 is above model hf:.* context of 64 tokens"):
        lm_rows(hf, "gpt", lm_context=65)


def contaminated(hf, spec: str):
    import robench
    from robench.lm.perplexity import contaminate
    from robench.threats.registry import build_threat

    tok = robench.load_model(f"hf:{hf['gpt']}").module.tokenizer
    lines = hf["wiki"].read_text(encoding="utf-8").splitlines()
    return tok, lines, *contaminate(lines, build_threat(spec), tok, seed=0)


def test_contamination_rewrites_words_before_tokenisation(hf):
    """As tests/test_lm.py checks for robench's LMs: rate 0 is the clean text, a positive rate changes
    tokens, seeded per line; word-swap's replacement words are the tokenizer's whole words."""
    tok, lines, same, frac = contaminated(hf, "word-swap:rate=0")
    assert same == lines and frac == 0.0
    _, _, changed, frac = contaminated(hf, "word-swap:rate=0.5")
    assert 0.1 < frac < 0.9
    assert contaminated(hf, "word-swap:rate=0.5")[2] == changed
    assert len(tok.vocab) > 20 and all(w.isalpha() and len(tok.hf.encode(" " + w)) == 1 for w in tok.vocab)
    words = lambda text: set(re.findall(r"[^\W\d_]+", text))  # the threats' words: letters, punctuation aside
    new_words = {w for a, b in zip(lines, changed) for w in words(b) - words(a)}
    assert new_words and new_words <= set(tok.vocab)
    assert contaminated(hf, "typo:rate=0.2")[3] > 0


@pytest.mark.slow
def test_contaminated_perplexity_is_that_of_the_contaminated_text(hf):
    """The model reads and predicts the contaminated lines: the hand loop over them gives the row."""
    _, _, changed, frac = contaminated(hf, "word-swap:rate=0.5")
    rows = lm_rows(hf, "gpt", threats=["word-swap:rate=0.5", "word-swap:rate=0", "typo:rate=0.2"])
    clean, swap, zero, typo = rows
    assert [r.threat for r in rows] == ["none", "word-swap:rate=0.5", "word-swap:rate=0", "typo:rate=0.2"]
    assert zero.attacked_acc == clean.attacked_acc and zero.mean_perturbation == 0
    assert swap.mean_perturbation == pytest.approx(frac, abs=1e-6) and typo.mean_perturbation > 0
    assert swap.attacked_acc == pytest.approx(hand_perplexity(hf["gpt"], changed, 64)[0], rel=PPL_REL)
    assert swap.attacked_acc != clean.attacked_acc


def test_two_hf_lms_with_one_tokenizer_pair_on_the_same_stream(hf):
    rows = lm_rows(hf, "gpt", "gpt_b", threats=["typo:rate=0.2"], baseline=f"hf:{hf['gpt_b']}")
    got = {(r.model, r.threat): r for r in rows}
    for threat in ("none", "typo:rate=0.2"):
        mine, base = got[(f"hf:{hf['gpt']}", threat)], got[(f"hf:{hf['gpt_b']}", threat)]
        assert mine.baseline == base.model and base.paired_p is None and mine.paired_test == "window-clustered-z"
        assert mine.delta_vs_baseline == pytest.approx(mine.attacked_acc - base.attacked_acc, abs=2e-6)
        assert 0 <= mine.paired_p <= 1 and mine.n == base.n
    with pytest.raises(RobenchError, match="read different token streams"):  # contexts 64 and 32: other windows
        lm_rows(hf, "gpt", "gpt32", baseline=f"hf:{hf['gpt32']}")
    rows = lm_rows(hf, "gpt", "gpt32", baseline=f"hf:{hf['gpt32']}", lm_context=32)
    assert rows[0].paired_test == "window-clustered-z"


@pytest.mark.slow
def test_an_hf_lm_and_a_robench_lm_do_not_pair(hf, tmp_path, cli):
    from robench.training.classifier import TrainArgs, train

    train(TrainArgs(task="lm", variant="sa", data=str(hf["wiki"]), eval_data=str(hf["wiki"]), train_tokens=400, epochs=1,
                    embed_dim=16, depth=1, num_heads=2, threads=1), tmp_path / "lm")
    assert_one_line_error(cli("evaluate", f"hf:{hf['gpt']}", str(tmp_path / "lm.safetensors"), "--dataset", str(hf["wiki"]),
                              "--baseline", str(tmp_path / "lm.safetensors"), "--suite", "clean"), "read different token streams")


@pytest.mark.slow
def test_perplexity_rows_through_the_cli(hf, tmp_path, cli):
    proc = cli("evaluate", f"hf:{hf['gpt']}", "--dataset", str(hf["wiki"]), "--threat", "word-swap:rate=0.3",
               "--csv", str(tmp_path / "rows.csv"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("wrote csv") and "Token" not in proc.stderr  # transformers' notes are not robench's output
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert [r["threat"] for r in rows] == ["none", "word-swap:rate=0.3"] and {r["metric"] for r in rows} == {"perplexity"}
    lines = hf["wiki"].read_text(encoding="utf-8").splitlines()
    assert float(rows[0]["attacked_acc"]) == pytest.approx(hand_perplexity(hf["gpt"], lines, 64)[0], rel=PPL_REL)


# ---- task dispatch -----------------------------------------------------------------------------------


def test_the_task_comes_from_the_config(hf, tmp_path):
    import robench

    assert robench.load_model(f"hf:{hf['gpt']}").task == "language-modeling"
    from transformers import ViTConfig

    ViTConfig().save_pretrained(tmp_path)  # a config alone: no architecture recorded
    with pytest.raises(RobenchError, match="names no architecture"):
        robench.load_model(f"hf:{tmp_path}")


def test_folder_digest_sees_an_edited_processor_beside_the_same_weights(tmp_path):
    """run.json pairs each model with its contract: for an hf: folder that includes the digest of
    its non-weight files, so a resumed run notices an edited preprocessor_config.json."""
    import robench

    d = vit_dir(tmp_path / "vit", LABELS)
    before = robench.load_model(f"hf:{d}")
    cfg = json.loads((d / "preprocessor_config.json").read_text())
    cfg["image_mean"] = [0.1, 0.2, 0.3]
    (d / "preprocessor_config.json").write_text(json.dumps(cfg))
    after = robench.load_model(f"hf:{d}")
    assert after.sha256 == before.sha256  # the weights are the same file
    assert after.card.preprocessing["folder_sha256"] != before.card.preprocessing["folder_sha256"]
    assert after.card.preprocessing["mean"] != before.card.preprocessing["mean"]


def test_word_swap_vocabulary_of_a_byte_level_tokenizer_is_words_not_bpe_entries():
    """word-swap draws from ``tokenizer.vocab``; for a byte-level BPE (GPT-2, RoBERTa) the raw entries
    read ``Ġthe`` and count as alphabetic, so the text classifier's and the LM's tokenizers both give
    the decoded whole words instead: each one encodes as a single token after a space."""
    from robench.models.hf_loader import HFTokenizer
    from robench.models.hf_lm import HFLMTokenizer

    tok = gpt2_tokenizer()
    raw = [w for w in tok.get_vocab() if w.isalpha()]
    assert any(w.startswith("Ġ") for w in raw)  # what the old vocabulary handed word-swap
    words = HFTokenizer(tok, 64).vocab
    assert words and not any("Ġ" in w for w in words) and all(w.isalpha() for w in words)
    for w in words:
        assert len(tok.encode(f"a {w}")) == len(tok.encode("a")) + 1
    assert {w.lstrip("Ġ") for w in raw if w.startswith("Ġ") and w[1:].isalpha()} <= set(words)
    assert HFLMTokenizer(tok, 64, "tokenizer").vocab == words  # the LM's word-swap draws the same words
