"""The sanity battery: planted gradient-masking models are flagged, the zoo is not, row checks fire."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from robench.engine.evaluate import EvaluateArgs, evaluate
from robench.models.loading import load_model
from robench.results.records import Record
from robench.results.schema import ResultRow
from robench.checks.sanity import FLAGS, model_flags, row_flags


class _ZeroBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class GradientKiller(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(_ZeroBackward.apply(x))


class SoftmaxOutput(GradientKiller):
    def forward(self, x):
        return self.net(x).softmax(-1)


class Quantised(GradientKiller):
    def forward(self, x):
        return self.net(torch.round(x * 4) / 4)  # round() has a zero gradient everywhere


class NoisyInference(GradientKiller):
    def forward(self, x):
        return self.net(x + 0.05 * torch.randn_like(x))


def planted(kind: type[nn.Module]):
    base = load_model("digits-vit-sa")
    return dataclasses.replace(base, name=f"planted-{kind.__name__}", module=kind(base.module).eval())


@pytest.mark.parametrize(
    "kind,expected",
    [
        (GradientKiller, {"zero-gradients", "unbounded-pgd"}),
        (SoftmaxOutput, {"probabilities"}),
        (Quantised, {"zero-gradients", "unbounded-pgd"}),
        (NoisyInference, {"nondeterministic"}),
    ],
)
def test_planted_models_are_flagged_in_rows_and_exports(kind, expected, tmp_path):
    torch.manual_seed(0)
    rows = evaluate(EvaluateArgs(models=[planted(kind)], threats=["fgsm:eps=0.1"], num_examples=100, device="cpu"))
    assert len(rows) == 2
    for r in rows:  # model checks concern every row of the model, clean included
        assert set(r.flags.split(";")) == expected, (r.flags, r.flag_notes)
        assert all(f"{code}: " in r.flag_notes for code in expected)
    from robench.report.tables import leaderboard_tables
    from rich.console import Console

    console = Console(width=250, record=True)
    for t in leaderboard_tables(rows):
        console.print(t)
    text = console.export_text()
    for code in expected:  # shown, with its explanation, not only computed
        assert f"⚠ {code}" in text and FLAGS[code][:40] in text


@pytest.mark.slow
def test_no_zoo_model_is_flagged():
    from robench.data.registry import load_dataset
    from robench.engine.jobs import select_examples
    from robench.models.loading import list_zoo

    zoo = list_zoo()
    assert len(zoo) == 8
    for name in zoo:
        model = load_model(name)
        ds = select_examples(load_dataset(model.card.evaluation["dataset"], "test", {}), 100, 0)
        assert model_flags(model, ds, 0) == [], name


def _records(robust: list[bool]) -> list[Record]:
    return [Record(id=i, label=0, clean_pred=0, attacked_pred=0 if ok else 1) for i, ok in enumerate(robust)]


def _row(model: str, threat: str, recs: list[Record]) -> ResultRow:
    acc = sum(r.robust for r in recs) / len(recs)
    return ResultRow(model=model, checkpoint_sha256="", task="image-classification", dataset="d", split="test",
                     n=len(recs), threat=threat, clean_acc=1, attacked_acc=acc, attacked_ci_low=0, attacked_ci_high=1,
                     attack_success_rate=1 - acc, mean_perturbation=0, perturbation_unit="linf", mean_queries=1,
                     seconds=0, seed=0, device="cpu", robench_version="x")


def _flags(results: dict[str, list[bool]]) -> dict[str, set[str]]:
    from robench.threats.registry import build_threat

    specs = {s: build_threat(s).spec for s in results}
    recs = {("m", "d", "test", specs[s]): _records(v) for s, v in results.items()}
    rows = [_row("m", specs[s], recs[("m", "d", "test", specs[s])]) for s in results]
    found = row_flags(rows, recs)
    return {s: {f.code for f in found.get(("m", "d", "test", specs[s]), [])} for s in results}


def test_row_checks_fire_on_significant_differences_only():
    n = 100
    low = [i < 20 for i in range(n)]  # 20% robust
    high = [i < 60 for i in range(n)]  # 60% robust, a superset: 40 discordant pairs, p << 0.05
    near = [i < 22 for i in range(n)]  # 2 discordant pairs: noise
    # accuracy increasing with eps
    f = _flags({"pgd:eps=0.1,alpha=0.01,steps=20": low, "pgd:eps=0.2,alpha=0.01,steps=20": high})
    assert f["pgd:eps=0.2,alpha=0.01,steps=20"] == {"eps-increase"} and not f["pgd:eps=0.1,alpha=0.01,steps=20"]
    assert _flags({"pgd:eps=0.1": low, "pgd:eps=0.2": near}) == {"pgd:eps=0.1": set(), "pgd:eps=0.2": set()}
    # a step size following eps (alpha = eps/4 unless given) is still "the same attack at a larger eps"
    assert _flags({"pgd:eps=0.1": low, "pgd:eps=0.2": high})["pgd:eps=0.2"] == {"eps-increase"}
    assert _flags({"pgd:eps=0.1": low, "pgd:eps=0.2,alpha=0.01": high})["pgd:eps=0.2,alpha=0.01"] == set()  # another step rule
    # PGD weaker than FGSM at the same eps; not at another eps
    f = _flags({"fgsm:eps=0.1": low, "pgd:eps=0.1": high})
    assert f == {"fgsm:eps=0.1": set(), "pgd:eps=0.1": {"pgd-weaker-than-fgsm"}}
    assert _flags({"fgsm:eps=0.1": low, "pgd:eps=0.05": high})["pgd:eps=0.05"] == set()
    # a query attack beating the gradient attack by a margin; a stronger gradient attack is normal
    f = _flags({"square:eps=0.1": low, "pgd:eps=0.1": high})
    assert f == {"square:eps=0.1": set(), "pgd:eps=0.1": {"query-beats-gradient"}}
    assert _flags({"square:eps=0.1": high, "pgd:eps=0.1": low}) == {"square:eps=0.1": set(), "pgd:eps=0.1": set()}
    # targeted PGD is not compared with untargeted FGSM
    assert _flags({"fgsm:eps=0.1": low, "pgd:eps=0.1,target=random": high})["pgd:eps=0.1,target=random"] == set()
