"""Text threats: contamination rates and seeding, textattack-compatible words, pwws-fast vs
textattack's PWWSRen2019, offline behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from robench.data.registry import load_dataset
from robench.errors import RobenchError
from robench.engine.jobs import clean_records, select_examples
from robench.models.loading import load_model
from robench.results.records import summarize
from robench.engine.runner import attack_records
from robench.threats.base import ThreatBatch
from robench.threats.registry import build_threat
from robench.threats.text.contamination import typo
from robench.threats.text.words import WordText, changed_word_fraction, words_from_text

TRICKY = [
    "a member of the genus Canis (probably descended from the common wolf)",
    "'quoted' words -- dashes, e-mail@host and don't stop",
    "Gram-negative aerobic bacteria;  double  spaces\tand tabs",
    "the \"so-called\" 3-D model's 2nd edition...",
]


@pytest.fixture(scope="module")
def sentences(wordnet_available):
    return load_dataset("wordnet-topics", "train").inputs[:1000]


@pytest.fixture(scope="module")
def text_model():
    return load_model("wordnet-text-sa", "cpu")


def contaminate(threat, model, texts, seeds):
    """The adversarial texts ``threat`` makes of ``texts`` through the one threat interface."""
    batch = ThreatBatch(list(texts), torch.zeros(len(texts), dtype=torch.long), len(model.labels), example_seeds=seeds)
    return threat(model.module, batch).adv


@pytest.mark.parametrize("name", ["word-swap", "word-drop", "typo"])
def test_contamination_rate_zero_is_identity_and_rate_is_measured(name, sentences, text_model):
    zero = build_threat(f"{name}:rate=0")
    seeds = list(range(len(sentences)))
    assert contaminate(zero, text_model, sentences, seeds) == list(sentences)
    for p in (0.05, 0.1, 0.3):
        adv = contaminate(build_threat(f"{name}:rate={p}"), text_model, sentences, seeds)
        n_words = sum(len(words_from_text(s)) for s in sentences)
        changed = sum(changed_word_fraction(s, a) * len(words_from_text(s)) for s, a in zip(sentences, adv))
        assert abs(changed / n_words - p) <= 0.02, (name, p, changed / n_words)


@pytest.mark.parametrize("name", ["word-swap", "word-drop", "typo"])
def test_contamination_is_seeded_per_example(name, sentences, text_model):
    t = build_threat(f"{name}:rate=0.2")
    texts = list(sentences[:200])
    a = contaminate(t, text_model, texts, list(range(200)))
    b = contaminate(t, text_model, texts, list(range(200)))
    c = contaminate(t, text_model, texts, list(range(1000, 1200)))
    assert a == b
    assert a != c
    # batch composition does not matter: example 7 alone gets the same text
    assert contaminate(t, text_model, [texts[7]], [7]) == [a[7]]


def test_typo_always_changes_the_word():
    rng = np.random.default_rng(0)
    for word in ["a", "aa", "ab", "word", "Zebra", "mississippi"] * 50:
        assert typo(word, rng) != word


def test_words_and_replacement_match_textattack():
    from robench.resources.nltk_setup import import_textattack

    import_textattack()
    from textattack.shared import AttackedText
    from textattack.shared.utils import words_from_text as ta_words

    for text in TRICKY:
        assert words_from_text(text) == ta_words(text)
        wt, at = WordText(text), AttackedText(text)
        for i in range(len(wt.words)):
            assert wt.replace(i, "[UNK]") == at.replace_word_at_index(i, "[UNK]").text
            assert wt.replace(i, "zebra") == at.replace_word_at_index(i, "zebra").text


def test_incremental_token_ids_equal_full_encoding(sentences, text_model):
    from robench.threats.text.pwws_fast import _candidates, _Encoder

    tok = text_model.module.tokenizer
    enc = _Encoder(tok)
    checked = 0
    for text in list(sentences[:150]) + TRICKY:
        wt = WordText(text)
        for j in range(len(wt.words)):
            cands = _candidates(wt, j) + [wt.replace(j, "[UNK]")]
            enc.edits(wt, j, cands)
            for c in cands:
                assert enc.ids[c] == tuple(tok.encode(c)), c
                checked += 1
    assert checked > 1000


@pytest.mark.slow
def test_pwws_fast_matches_textattack_pwws(wordnet_available):
    model = load_model("wordnet-text-bsa", "cpu")
    ds = select_examples(load_dataset("wordnet-topics", "test"), 120, seed=3)
    clean = clean_records(model, ds, 256)
    ta = attack_records(model, ds, build_threat("pwws"), clean, 256, 0)
    fast = attack_records(model, ds, build_threat("pwws-fast"), clean, 256, 0)
    s_ta, s_fast = summarize(ta), summarize(fast)
    assert abs(s_ta.attack_success_rate - s_fast.attack_success_rate) <= 0.03
    both = [(a, b) for a, b in zip(ta, fast) if a.clean_correct and not a.robust and not b.robust]
    assert len(both) >= 40
    same = sum(a.adv_text == b.adv_text for a, b in both)
    assert same >= 0.9 * len(both)
    for r in fast:
        if r.clean_correct and not r.robust:  # a broken example really is misclassified
            assert int(model.module.predict_texts([r.adv_text]).argmax()) == r.attacked_pred != r.label
            assert 0 < r.perturbation <= 1


@pytest.mark.slow
def test_pwws_fast_records_failed_attacks_as_textattack_does(wordnet_available):
    """A failed attack keeps the original text (textattack's record), not the last swap pwws-fast tried."""
    model = load_model("wordnet-text-sa", "cpu")
    ds = select_examples(load_dataset("wordnet-topics", "test"), 40, seed=5)
    clean = clean_records(model, ds, 256)
    ta = attack_records(model, ds, build_threat("pwws:query_budget=25"), clean, 256, 0)  # a small budget: most attacks fail
    fast = attack_records(model, ds, build_threat("pwws-fast:query_budget=25"), clean, 256, 0)
    original = dict(zip(ds.ids, ds.inputs))
    failed = [(a, b) for a, b in zip(ta, fast) if a.clean_correct and a.robust and b.robust]
    assert len(failed) >= 20
    for a, b in failed:
        assert a.adv_text == b.adv_text == original[a.id]
        assert a.perturbation == b.perturbation == 0.0
        assert a.attacked_pred == b.attacked_pred == a.label and a.queries == b.queries


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["deepwordbug", "pruthi", "textattack:deepwordbug,query_budget=50"])
def test_other_textattack_recipes_run_offline(spec, text_model, wordnet_available):
    ds = select_examples(load_dataset("wordnet-topics", "test"), 12, seed=0)
    clean = clean_records(text_model, ds, 64)
    recs = attack_records(text_model, ds, build_threat(spec), clean, 64, 0)
    s = summarize(recs)
    assert s.attacked_acc <= s.clean_acc
    for r in recs:
        if r.clean_correct and not r.robust:
            assert r.adv_text and r.queries > 0
            if "query_budget=50" in spec:
                assert r.queries <= 50


def test_textattack_spec_forms():
    assert build_threat("textattack:pwws") == build_threat("textattack:recipe=pwws")
    assert build_threat("textattack:PWWS").recipe == "pwws"
    with pytest.raises(RobenchError, match="is not one of a2t, alzantot"):
        build_threat("textattack:nonsense")
    with pytest.raises(RobenchError, match="is not key=value"):
        build_threat("pwws-fast:10")


@pytest.mark.slow
def test_recipe_needing_downloads_fails_with_one_line(cli, wordnet_available):
    proc = cli("attack", "wordnet-text-sa", "--threat", "textattack:textfooler", "-n", "5", "--device", "cpu")
    assert_one_line_error(proc, "needs counter-fitted word embeddings and the Universal Sentence Encoder")
    proc = cli("attack", "wordnet-text-sa", "--threat", "textattack:input-reduction", "-n", "5", "--device", "cpu")
    assert_one_line_error(proc, "has goal InputReduction, not a classification attack")


@pytest.mark.slow
def test_word_level_threats_without_wordnet_exit_2(cli, tmp_path):
    env = {"HOME": str(tmp_path), "ROBENCH_HOME": str(tmp_path / "rb"), "NLTK_DATA": ""}
    for spec in ("pwws-fast", "pwws"):
        proc = cli("attack", "wordnet-text-sa", "--threat", spec, "-n", "5", "--device", "cpu", env=env)
        assert_one_line_error(proc, "need")
        assert "WordNet" in proc.stderr or "stopwords" in proc.stderr
    # nothing else breaks: image threats and contamination still run
    csv_path = tmp_path / "ok.csv"
    proc = cli("attack", "digits-vit-sa", "--threat", "fgsm:eps=0.1", "-n", "20", "--device", "cpu", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = cli("attack", "wordnet-text-sa", "--threat", "typo:rate=0.2", "-n", "20", "--device", "cpu",
               "--csv", str(csv_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert csv_path.read_text().count("\n") == 3


def test_attack_cli_shows_text_pairs_and_records(cli, tmp_path, wordnet_available):
    proc = cli("attack", "wordnet-text-sa", "--threat", "word-swap:rate=0.3", "-n", "60", "--device", "cpu",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n  - ") == 3 and proc.stdout.count("\n  + ") == 3
    assert "max Linf" not in proc.stdout  # no pixel norms for text: the largest fraction of words changed instead
    clean_file, rec_file = sorted(tmp_path.glob("*.jsonl"), key=lambda p: not p.name.endswith("__none.jsonl"))
    assert clean_file.name == "wordnet-text-sa__none.jsonl"  # the clean pass is recorded too (and resumable)
    recs = [json.loads(l) for l in rec_file.read_text().splitlines()]
    assert len(recs) == 60
    attacked = [r for r in recs if r["clean_pred"] == r["label"]]
    assert all(r["adv_text"] for r in attacked)
    for r in attacked:
        assert r["queries"] == 1.0
    recs_max = max(r["perturbation"] for r in attacked)
    assert f"max words changed (attacked) │ {100 * recs_max:.0f}% of words" in " ".join(proc.stdout.split())


@pytest.mark.slow
def test_query_budget_caps_both_engines_alike(tmp_path, wordnet_available):
    from robench.engine.evaluate import EvaluateArgs, evaluate

    rows = evaluate(EvaluateArgs(models=["wordnet-text-grc"], threats=["pwws", "pwws-fast"], query_budget=40,
                                 num_examples=80, device="cpu", out=tmp_path))
    ta, fast = rows[1], rows[2]
    assert "query_budget=40" in ta.threat and "query_budget=40" in fast.threat
    assert abs(ta.attack_success_rate - fast.attack_success_rate) <= 0.03
    for f in tmp_path.glob("*pwws*.jsonl"):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            assert rec["queries"] <= 40


def test_text_top5_comes_from_the_probabilities_the_prediction_came_from():
    """A text model with more than 5 classes gets top-5 in its records: clean from its logits,
    attacked from the probabilities of the contaminated texts (no second scoring pass needed)."""
    import torch

    from robench.checkpoint.card import Card
    from robench.data.base import TEXT, Dataset
    from robench.data.tokenizer import WordTokenizer
    from robench.models.loading import LoadedModel
    from robench.models import ArchConfig, build_model
    from robench.models.wrappers import TextClassifier
    from robench.engine.runner import attack_records
    from robench.threats.registry import build_threat
    from robench.threats.text.base import text_probs

    texts = [f"word{i % 7} word{i % 5} common words here number {i % 3}" for i in range(24)]
    tok = WordTokenizer.build(texts, 12)
    torch.manual_seed(0)
    cfg = ArchConfig(family="text", variant="sa", num_classes=8, vocab_size=len(tok), max_length=12,
                     embed_dim=16, depth=1, num_heads=2)
    net = build_model(cfg).eval()
    module = TextClassifier(net, tok)
    with torch.inference_mode():
        preds = module.predict_texts(texts).argmax(-1)
    card = Card(task=TEXT, labels=[str(i) for i in range(8)], architecture=cfg, preprocessing=tok.contract())
    model = LoadedModel(name="t8", module=module, card=card, sha256="")
    ds = Dataset(name="t", task=TEXT, split="test", labels=[str(i) for i in range(8)], inputs=texts,
                 targets=preds.clone(), ids=list(range(24)), sha256="x")  # every example correct when clean
    clean = clean_records(model, ds, 8)
    with torch.inference_mode():
        logits = module.predict_texts(texts)
    assert [r.clean_top5 for r in clean] == logits.topk(5).indices.tolist()
    recs = attack_records(model, ds, build_threat("word-swap:rate=0.5"), clean, 8, 0)
    probs = text_probs(module, [r.adv_text for r in recs])
    assert [r.attacked_top5 for r in recs] == probs.topk(5).indices.tolist()
    assert [r.attacked_pred for r in recs] == probs.argmax(-1).tolist()
