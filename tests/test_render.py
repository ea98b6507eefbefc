"""Leaderboard rendering: every stored run shown, footers that describe what the table holds."""

from __future__ import annotations

import io

from rich.console import Console

from robench.report.tables import leaderboard_tables
from robench.results.schema import ResultRow


def row(model: str, threat: str, acc: float, n: int = 100, seed: int = 0, metric: str = "accuracy", **extra) -> ResultRow:
    return ResultRow(model=model, checkpoint_sha256="0" * 64, task="image-classification", dataset="digits", split="test",
                     n=n, threat=threat, clean_acc=0.9, attacked_acc=acc, attacked_ci_low=max(0.0, acc - 0.05),
                     attacked_ci_high=min(1.0, acc + 0.05), attack_success_rate=0.0, mean_perturbation=0.0,
                     perturbation_unit="linf", mean_queries=0.0, seconds=0.0, seed=seed, device="cpu",
                     robench_version="0", metric=metric, **extra)


def text(rows: list[ResultRow]) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    for t in leaderboard_tables(rows):
        console.print(t)
    return " ".join(buf.getvalue().split())  # captions wrap at the table's width


FGSM = "fgsm:eps=0.1,target=none"


def test_runs_of_one_model_and_threat_at_two_n_are_both_shown():
    rows = [row("m", "none", 0.9, n=30), row("m", FGSM, 0.6, n=30), row("m", "none", 0.9, n=359), row("m", FGSM, 0.55, n=359)]
    out = text(rows)
    assert out.count("robench leaderboard: digits (test)") == 2
    assert "· n=30 · seed 0" in out and "· n=359 · seed 0" in out
    assert "60.0" in out and "55.0" in out  # neither run hides the other
    assert len(leaderboard_tables(rows[:2])) == 1 and "· n=30" not in text(rows[:2])  # one run: the title as before


def test_other_seeds_and_repeated_rows():
    a = [row("m", "none", 0.9), row("m", FGSM, 0.6)]
    b = [row("m", "none", 0.9, seed=1), row("m", FGSM, 0.5, seed=1)]
    assert len(leaderboard_tables(a + b)) == 2 and "· seed 1" in text(a + b)
    assert len(leaderboard_tables(a + a)) == 1  # the same file given twice: shown once
    other = [row("m", "none", 0.9), row("m", FGSM, 0.4)]  # same n and seed, another result: a further table
    out = text(a + other)
    assert len(leaderboard_tables(a + other)) == 2 and "rows repeated (2)" in out and "40.0" in out and "60.0" in out


def test_footer_names_mce_and_the_paired_test_only_when_present():
    base = [row("sa", "none", 0.9), row("sa", FGSM, 0.6)]
    paired = [row("bsa", "none", 0.9, baseline="sa", delta_vs_baseline=0.0, paired_p=1.0, paired_test="mcnemar-exact"),
              row("bsa", FGSM, 0.5, baseline="sa", delta_vs_baseline=-0.1, paired_p=0.0123456, paired_test="mcnemar-exact")]
    out = text(base + paired)
    assert "Δ: paired difference to sa, p: exact McNemar" in out and "mCE" not in out
    assert "p=0.012" in out and "0.0123456" not in out  # p rounded in the table
    pooled = [row("sa", "corruption:name=all", 0.8),
              row("bsa", "corruption:name=all", 0.7, baseline="sa", delta_vs_baseline=-0.1, mce=1.2)]
    out = text(pooled)
    assert "mCE: corruption error relative to it" in out and "exact McNemar" not in out
    lm = [row("lm-sa", "none", 50.0, metric="perplexity"),
          row("lm-bsa", "none", 55.0, metric="perplexity", baseline="lm-sa", delta_vs_baseline=5.0, paired_p=0.2,
              paired_test="window-clustered-z")]
    out = text(lm)
    assert "p: paired test of the per-window NLL differences" in out and "McNemar" not in out
