"""One threat interface: ``threat(model, ThreatBatch) -> Outcome`` for images and texts alike,
through one runner path, and each threat's ``perturbation_unit`` reaching its row."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robench.data.registry import load_dataset
from robench.engine.evaluate import EvaluateArgs, evaluate
from robench.engine.jobs import clean_records, select_examples
from robench.engine.runner import attack_records, example_seed
from robench.models.loading import load_model
from robench.threats.base import Outcome, Threat, ThreatBatch
from robench.threats.registry import build_threat
from robench.threats.text.contamination import example_rng
from robench.threats.text.words import changed_word_fraction


@pytest.fixture
def calls(monkeypatch):
    """Every ``Threat.__call__`` the runner makes: (threat, batch, outcome)."""
    seen: list[tuple[Threat, ThreatBatch, Outcome]] = []
    call = Threat.__call__

    def spy(self, model, batch):
        out = call(self, model, batch)
        seen.append((self, batch, out))
        return out

    monkeypatch.setattr(Threat, "__call__", spy)
    return seen


def test_one_runner_path_serves_an_image_and_a_text_threat(calls, wordnet_available):
    # images: FGSM against a hand-written FGSM step
    image_model = load_model("digits-vit-sa", "cpu")
    images = select_examples(load_dataset("digits", "test"), 60, seed=0)
    fgsm = build_threat("fgsm:eps=0.1")
    image_recs = attack_records(image_model, images, fgsm, clean_records(image_model, images, 256), 256, 0)
    # texts: word swaps against the contamination drawn by hand from each example's seed
    text_model = load_model("wordnet-text-sa", "cpu")
    texts = select_examples(load_dataset("wordnet-topics", "test"), 40, seed=0)
    swap = build_threat("word-swap:rate=0.3")
    text_recs = attack_records(text_model, texts, swap, clean_records(text_model, texts, 256), 256, 0)

    assert [type(t) for t, _, _ in calls] == [type(fgsm), type(swap)]  # one batch each, one __call__ for both
    (_, image_batch, _), (_, text_batch, text_out) = calls
    assert isinstance(image_batch.inputs, torch.Tensor) and isinstance(text_batch.inputs, list)
    assert text_out.adv == text_out.adv_text and len(text_out.scores) == len(text_batch.inputs)

    x = images.inputs.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(image_model.module(x), images.targets), x)
    adv = (x + 0.1 * grad.sign()).clamp(0, 1).detach()
    with torch.no_grad():
        pred = image_model.module(adv).argmax(-1)
    attacked = [p for p, r in enumerate(image_recs) if r.clean_correct]
    assert 0 < sum(not image_recs[p].robust for p in attacked) < len(attacked)
    for p in attacked:
        r, d = image_recs[p], (adv[p] - images.inputs[p]).flatten().double()
        assert r.attacked_pred == int(pred[p])
        assert r.linf == pytest.approx(float(d.abs().max()), abs=1e-6) and r.perturbation == r.linf
        assert r.l2 == pytest.approx(float(d.norm()), rel=1e-5) and r.adv_text is None

    vocab = [w for w in text_model.module.tokenizer.vocab if w.isalpha()]
    attacked = [p for p, r in enumerate(text_recs) if r.clean_correct]
    assert attacked
    for p in attacked:
        r, original = text_recs[p], texts.inputs[p]
        expected = swap.corrupt(original, example_rng(example_seed(0, texts.ids[p])), vocab)
        assert r.adv_text == expected
        assert r.perturbation == pytest.approx(changed_word_fraction(original, expected))
        with torch.inference_mode():
            assert r.attacked_pred == int(text_model.module(text_model.module.encode([expected])).argmax(-1))
        assert r.linf == r.l2 == 0.0 and r.queries == 1.0


def test_perturbation_unit_reaches_the_row(wordnet_available):
    """The unit of each row is its threat's ``perturbation_unit``: the class's (fgsm: linf, word-swap:
    words) or the one the spec's norm chose (apgd:norm=l2), and its records are measured in it."""
    rows = evaluate(EvaluateArgs(models=["digits-vit-sa", "wordnet-text-sa"], num_examples=30, device="cpu",
                                 threats=["fgsm:eps=0.1", "apgd:eps=0.5,norm=l2,steps=2", "word-swap:rate=0.2"]))
    units = {(r.model, r.threat.split(":")[0]): r.perturbation_unit for r in rows}
    assert units == {
        ("digits-vit-sa", "none"): "none", ("digits-vit-sa", "fgsm"): "linf", ("digits-vit-sa", "apgd"): "l2",
        ("wordnet-text-sa", "none"): "none", ("wordnet-text-sa", "word-swap"): "words",
    }
    assert build_threat("apgd:norm=l2").perturbation_unit == "l2" and build_threat("apgd").perturbation_unit == "linf"
    model = load_model("digits-vit-sa", "cpu")
    ds = select_examples(load_dataset("digits", "test"), 30, seed=0)
    recs = attack_records(model, ds, build_threat("apgd:eps=0.5,norm=l2,steps=2"), clean_records(model, ds, 256), 256, 0)
    attacked = [r for r in recs if r.clean_correct]
    assert attacked and all(r.perturbation == r.l2 for r in attacked)
    assert any(r.l2 != r.linf for r in attacked)
