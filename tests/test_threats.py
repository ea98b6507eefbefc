"""Threats: spec parsing, torchattacks-backed attacks against hand-written references, invariants."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_one_line_error
from robench.data.registry import load_dataset
from robench.errors import RobenchError
from robench.engine.evaluate import EvaluateArgs, evaluate
from robench.engine.jobs import clean_records, select_examples
from robench.models.loading import load_model
from robench.results.records import summarize
from robench.results.stats import mcnemar_exact
from robench.engine.runner import attack_records
from robench.threats.registry import build_threat, threat_classes
from robench.threats.suite import load_suite


# ---------------------------------------------------------------- specs
def test_spec_canonical_form_and_fractions():
    a = build_threat("pgd:eps=8/255,steps=20")
    b = build_threat("PGD: steps=20 , eps=0.03137254901960784")
    assert a == b
    assert a.spec == "pgd:alpha=2/255,eps=8/255,random_start=1,restarts=1,steps=20,target=none"
    assert a.eps == pytest.approx(8 / 255) and a.steps == 20
    assert build_threat(a.spec) == a  # the canonical form parses back to itself
    assert build_threat("fgsm").short == "fgsm"
    assert build_threat("pgd:eps=0.1,alpha=1/40").short == "pgd:alpha=0.025,eps=0.1"  # exact decimals stay decimal


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("nosuch", "unknown threat 'nosuch'; valid threats: apgd, autoattack, corruption, deepwordbug, fgsm, pgd, pgd-l2, pruthi, pwws, pwws-fast, spsa, square, textattack, typo, word-drop, word-swap"),
        ("pgd:epsilon=0.1", "threat 'pgd' has no parameter 'epsilon'; valid: eps, alpha, steps, random_start, restarts, target"),
        ("fgsm:eps=-0.1", "is below the minimum 0"),
        ("fgsm:eps=2", "is above the maximum 1"),
        ("fgsm:eps=abc", "'abc' is not a number"),
        ("fgsm:eps=1/0", "divides by zero"),
        ("fgsm:eps=__import__('os')", "is not a number"),
        ("pgd:steps=2.5", "must be a whole number"),
        ("pgd:eps", "'eps' is not key=value"),
        ("pgd:eps=0.1,eps=0.2", "given twice"),
        ("fgsm:target=best", "is not one of none, random, least-likely"),
        ("pgd:restarts=3,random_start=0", "restarts > 1 needs random_start=1"),
    ],
)
def test_bad_specs(spec, fragment):
    with pytest.raises(RobenchError) as e:
        build_threat(spec)
    assert fragment in str(e.value)


@pytest.mark.slow
def test_bad_spec_cli_exit_2(cli):
    proc = cli("attack", "digits-vit-sa", "--threat", "pgd:epsilon=0.1", "--device", "cpu")
    assert_one_line_error(proc, "has no parameter 'epsilon'")
    proc = cli("evaluate", "digits-vit-sa", "--suite", "nope", "--device", "cpu")
    assert_one_line_error(proc, "unknown suite 'nope'; available: clean, default, paper")
    proc = cli("evaluate", "wordnet-text-sa", "--threat", "fgsm", "--device", "cpu")
    assert_one_line_error(proc, "threat 'fgsm' is a image threat but no evaluated model is a image model")


def test_suites_parse():
    paper = load_suite("paper").for_modality("image")
    assert len(paper) == 18
    pgd = [t for t in paper if t.name == "pgd"]
    assert [round(t.eps * 255, 6) for t in pgd] == [1, 2, 3, 4, 5, 6]
    assert all(t.steps == 20 and t.random_start and t.alpha == pytest.approx(0.15 * t.eps) for t in pgd)
    assert [t.name for t in load_suite("default").for_modality("image")] == ["fgsm", "pgd"]


def test_mcnemar_matches_the_binomial_tail():
    # hand-written: twice the smaller Binomial(b + c, 1/2) tail, capped at 1
    for b, c in [(0, 0), (3, 0), (5, 5), (2, 9), (17, 4), (40, 61)]:
        n, k = b + c, min(b, c)
        expected = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- attacks vs references
@pytest.fixture(scope="module")
def digits_sa():
    model = load_model("digits-vit-sa", "cpu")
    ds = select_examples(load_dataset("digits", "test"), 120, seed=0)
    return model, ds, clean_records(model, ds, 256)


def _robust(model, ds, clean, spec, keep=None):
    """Records of ``spec``; ``keep`` (a dict) receives the adversarial input of every attacked position."""
    collect = None if keep is None else (lambda pos, adv: keep.update(zip(pos, adv.cpu())))
    return attack_records(model, ds, build_threat(spec), clean, 256, 0, keep_adv=collect)


def test_fgsm_equals_hand_written(digits_sa):
    model, ds, clean = digits_sa
    eps = 0.1
    recs = _robust(model, ds, clean, f"fgsm:eps={eps}")
    x = ds.inputs.clone().requires_grad_(True)
    loss = F.cross_entropy(model.module(x), ds.targets)
    (grad,) = torch.autograd.grad(loss, x)
    adv = (x + eps * grad.sign()).clamp(0, 1).detach()
    with torch.no_grad():
        pred = model.module(adv).argmax(-1)
    expected = [(c.clean_correct and int(p) == c.label) for c, p in zip(clean, pred)]
    assert [r.robust for r in recs] == expected
    assert summarize(recs).robust == sum(expected)


def test_pgd_equals_hand_written_any_iterate_loop(digits_sa):
    model, ds, clean = digits_sa
    eps, alpha, steps = 0.06, 0.015, 7
    recs = _robust(model, ds, clean, f"pgd:eps={eps},alpha={alpha},steps={steps},random_start=0")
    x, y = ds.inputs, ds.targets
    adv = x.clone()
    broken = torch.zeros(len(y), dtype=torch.bool)
    for _ in range(steps):
        adv.requires_grad_(True)
        logits = model.module(adv)
        broken |= logits.argmax(-1) != y  # every evaluated iterate counts
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), adv)
        adv = (x + (adv.detach() + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    with torch.no_grad():
        broken |= model.module(adv).argmax(-1) != y
    expected = [c.clean_correct and not bool(b) for c, b in zip(clean, broken)]
    assert [r.robust for r in recs] == expected
    assert all(r.queries == steps for r in recs if r.clean_correct)


@pytest.mark.parametrize(
    "spec,norm",
    [
        ("fgsm:eps=0.1", "linf"),
        ("pgd:eps=0.08,alpha=0.02,steps=5,restarts=2", "linf"),
        ("pgd-l2:eps=0.7,alpha=0.2,steps=5", "l2"),
        ("apgd:eps=0.08,steps=5", "linf"),
        ("square:eps=0.08,queries=30", "linf"),
        ("spsa:eps=0.08,iters=2,samples=8", "linf"),
        ("pgd:eps=0.08,alpha=0.02,steps=5,target=least-likely", "linf"),
    ],
)
def test_every_threat_keeps_its_budget(digits_sa, spec, norm):
    model, ds, clean = digits_sa
    keep: dict = {}
    recs = _robust(model, ds, clean, spec, keep)
    threat = build_threat(spec)
    s = summarize(recs)
    assert s.attacked_acc <= s.clean_acc
    assert set(keep) == {i for i, c in enumerate(clean) if c.clean_correct}
    for i, adv in keep.items():
        d = (adv - ds.inputs[i]).flatten()
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        size = float(d.abs().max()) if norm == "linf" else float(d.norm())
        assert size <= threat.eps + 1e-5
        assert recs[i].perturbation == pytest.approx(size, abs=1e-6)
    with torch.no_grad():  # the recorded attacked prediction is the model's prediction on the kept input
        idx = sorted(keep)
        pred = model.module(torch.stack([keep[i] for i in idx])).argmax(-1)
    assert [recs[i].attacked_pred for i in idx] == pred.tolist()


@pytest.mark.slow
def test_autoattack_runs_with_card_classes(digits_sa):
    model, ds, clean = digits_sa
    small = select_examples(ds, 20, seed=0)
    recs = attack_records(model, small, build_threat("autoattack:eps=0.05"), clean_records(model, small, 64), 64, 0)
    s = summarize(recs)
    pgd = summarize(attack_records(model, small, build_threat("pgd:eps=0.05,alpha=0.0125,steps=10"), clean_records(model, small, 64), 64, 0))
    assert s.attacked_acc <= pgd.attacked_acc  # AutoAttack is at least as strong as PGD-10 here


@pytest.mark.slow
def test_pgd_beats_fgsm_and_accuracy_falls_with_eps():
    rows = evaluate(EvaluateArgs(
        models=["digits-vit-sa", "digits-vit-grc"], num_examples=150, device="cpu",
        threats=[f"{n}:eps={k}/255" + (f",alpha={0.15 * k}/255,steps=20" if n == "pgd" else "")
                 for n in ("fgsm", "pgd") for k in (1, 2, 3, 4, 5, 6)] + ["fgsm:eps=0.1", "pgd:eps=0.1,alpha=1/40"],
    ))
    by = {(r.model, r.threat): r for r in rows}
    for m in ("digits-vit-sa", "digits-vit-grc"):
        assert by[(m, build_threat("pgd:eps=0.1,alpha=1/40").spec)].attacked_acc <= by[(m, build_threat("fgsm:eps=0.1").spec)].attacked_acc
        for name in ("fgsm", "pgd"):
            accs = [r.attacked_acc for r in rows if r.model == m and r.threat.startswith(name + ":") and "eps=0.1" not in r.threat]
            assert len(accs) == 6
            one = 1 / 150
            assert all(b <= a + one + 1e-9 for a, b in zip(accs, accs[1:])), accs


@pytest.mark.slow
def test_save_adv_reevaluates_to_attacked_accuracy(cli, tmp_path):
    adv = tmp_path / "adv.safetensors"
    rows = tmp_path / "a.json"
    proc = cli("attack", "digits-vit-bsa", "--threat", "pgd:eps=0.05,alpha=1/80", "-n", "100", "--device", "cpu",
               "--save-adv", str(adv), "--json", str(rows))
    assert proc.returncode == 0, proc.stderr
    attacked = json.loads(rows.read_text())[1]["attacked_acc"]
    again = tmp_path / "b.json"
    proc = cli("evaluate", "digits-vit-bsa", "--dataset", str(adv), "--suite", "clean", "--device", "cpu", "--json", str(again))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(again.read_text())[0]["clean_acc"] == attacked
    # transfer: another model evaluates the same adversarial set
    proc = cli("evaluate", "digits-vit-sa", "--dataset", str(adv), "--suite", "clean", "--device", "cpu", "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_baseline_columns_match_records(tmp_path):
    rows = evaluate(EvaluateArgs(models=["digits-vit-grc"], baseline="digits-vit-sa", num_examples=100,
                                 device="cpu", threats=["fgsm:eps=0.1"], out=tmp_path))
    r = next(r for r in rows if r.model == "digits-vit-grc" and r.threat != "none")
    base = next(b for b in rows if b.model == "digits-vit-sa" and b.threat == r.threat)
    assert r.baseline == "digits-vit-sa"
    assert r.delta_vs_baseline == pytest.approx(r.attacked_acc - base.attacked_acc, abs=1e-6)
    fname = r.threat.replace(":", "_").replace("/", "_")
    mine = [json.loads(l) for l in (tmp_path / f"digits-vit-grc__{fname}.jsonl").read_text().splitlines()]
    theirs = [json.loads(l) for l in (tmp_path / f"digits-vit-sa__{fname}.jsonl").read_text().splitlines()]
    ok = lambda x: x["clean_pred"] == x["label"] == x["attacked_pred"]  # noqa: E731
    b = sum(ok(m) and not ok(t) for m, t in zip(mine, theirs))
    c = sum(ok(t) and not ok(m) for m, t in zip(mine, theirs))
    n, k = b + c, min(b, c)
    exact = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    assert r.paired_p == float(f"{exact:.6g}")  # 6 significant digits in every export, like the schema's other p-values
    assert r.paired_test == "mcnemar-exact" and base.paired_test == "" and base.paired_p is None


def test_threats_command_lists_every_threat(cli):
    proc = cli("threats", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [t["name"] for t in data["threats"]] == list(threat_classes())
    pgd = next(t for t in data["threats"] if t["name"] == "pgd")
    assert {p["name"]: p["default"] for p in pgd["params"]}["steps"] == 10
    assert {p["name"]: p["derived_default"] for p in pgd["params"]}["alpha"] == "eps/4"
    assert [s["name"] for s in data["suites"]] == ["clean", "default", "paper"]
    default = next(s for s in data["suites"] if s["name"] == "default")
    assert default["image"] == ["fgsm:eps=0.1,target=none", "pgd:alpha=0.025,eps=0.1,random_start=1,restarts=1,steps=10,target=none"]
    assert default["text"] == ["pwws-fast:batch_size=512,query_budget=0", "word-swap:rate=0.1", "typo:rate=0.1"]
    assert len(next(s for s in data["suites"] if s["name"] == "paper")["image"]) == 18
    # the unit is what a default-built threat measures in (apgd/square/autoattack: their norm parameter)
    from robench.threats.registry import build_threat

    for t in data["threats"]:
        assert t["unit"] == build_threat(t["name"]).perturbation_unit, t["name"]
    units = {t["name"]: (t["unit"], t["unit_follows"]) for t in data["threats"]}
    assert units["apgd"] == ("linf", "norm") and units["fgsm"] == ("linf", None) and units["word-swap"] == ("words", None)


def test_threats_listing_is_whole_at_80_columns_when_piped(cli):
    """Every choice and description whole (wrapped at spaces, never cut) at COLUMNS=80, piped."""
    from robench.threats.image.corruption_names import CORRUPTIONS
    from robench.threats.text.textattack_recipes import RECIPES

    proc = cli("threats", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert "…" not in proc.stdout
    for name in (*CORRUPTIONS, *RECIPES, "least-likely"):  # `COLUMNS=80 robench threats | grep -c NAME` finds each
        assert sum(name in line.replace(",", " ").split() for line in lines) >= 1, name
    words = " ".join(proc.stdout.split())  # the text with its wrapping undone
    for name, cls in threat_classes().items():
        assert " ".join(cls.summary.split()) in words, name
        for p in cls.params:
            assert " ".join(p.help.split()) in words and ", ".join(p.choices) in words, (name, p.name)
    assert "alpha=eps/4" in words and "2/255 at the default eps" in words
    wide = cli("threats", env={"COLUMNS": "120"})
    assert max(map(len, wide.stdout.splitlines())) > 80  # COLUMNS is honoured, not a fixed width


def test_step_size_follows_eps_unless_given():
    from robench.threats.image.pgd import PGD

    assert build_threat("pgd:eps=0.1").alpha == 0.025  # eps/4, not the old fixed 2/255
    assert build_threat("pgd:eps=0.1").spec == "pgd:alpha=0.025,eps=0.1,random_start=1,restarts=1,steps=10,target=none"
    assert build_threat("pgd:eps=0.1,alpha=0.01").alpha == 0.01  # given: kept
    assert build_threat("pgd").alpha == build_threat("pgd").eps / 4 == 2 / 255  # the default is the same rule
    assert build_threat("pgd-l2:eps=1").alpha == 0.25 and build_threat("pgd-l2").alpha == 0.125
    assert PGD(eps=0.2).alpha == 0.05  # the Python constructor derives too
    t = build_threat("pgd:eps=0.1").with_values(query_budget=5)
    assert t.alpha == 0.025
    # the step size is shown whenever eps is, and a canonical spec parses back to itself
    assert build_threat("pgd:eps=0.1").short == "pgd:alpha=0.025,eps=0.1"
    assert build_threat("pgd:alpha=0.01").short == "pgd:alpha=0.01"
    assert build_threat("pgd").short == "pgd"
    assert build_threat(build_threat("pgd:eps=3/255").spec) == build_threat("pgd:eps=3/255")
    # what torchattacks receives
    atk = build_threat("pgd:eps=0.1").make_attack(torch.nn.Linear(2, 2), 2, 0)
    assert atk.alpha == 0.025 and atk.eps == 0.1
    for cls in threat_classes().values():  # a derived parameter's listed default is its rule at the source's default
        for p in cls.params:
            if p.follows:
                source = next(q for q in cls.params if q.name == p.follows)
                assert p.default == source.default / p.divisor


def test_apgd_runs_100_steps_by_default_as_autoattack():
    t = build_threat("apgd")
    assert t.steps == 100 and "steps=100" in t.spec
    atk = t.make_attack(torch.nn.Linear(2, 2), 2, 0)
    assert atk.steps == 100
