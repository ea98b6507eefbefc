"""`robench aggregate`: seed means, spreads and paired tests against hand computations and scipy."""

from __future__ import annotations

import csv
import io
import math
import statistics

import pytest

from conftest import assert_one_line_error
from robench.report.summaries import summaries_markdown
from robench.studies.aggregate import aggregate_seeds, split_seed, summaries_csv
from robench.errors import RobenchError
from robench.results.schema import ResultRow, export


def row(model: str, threat: str, acc: float, clean: float = 0.9, p: float | None = None, metric: str = "accuracy",
        n: int = 100) -> ResultRow:
    return ResultRow(model=model, checkpoint_sha256="0" * 64, task="image-classification", dataset="d", split="test",
                     n=n, threat=threat, clean_acc=clean, attacked_acc=acc, attacked_ci_low=0.0, attacked_ci_high=1.0,
                     attack_success_rate=0.0, mean_perturbation=0.0, perturbation_unit="linf", mean_queries=0.0,
                     seconds=0.0, seed=0, device="cpu", robench_version="0", paired_p=p, metric=metric,
                     paired_test="" if p is None else "window-clustered-z" if metric == "perplexity" else "mcnemar-exact")


ACC = {("m-sa", 0): 0.50, ("m-sa", 1): 0.40, ("m-sa", 2): 0.45,
       ("m-bsa", 0): 0.55, ("m-bsa", 1): 0.41, ("m-bsa", 2): 0.40}


def rows() -> list[ResultRow]:
    out = []
    for (group, seed), acc in ACC.items():
        out.append(row(f"{group}-s{seed}", "none", 0.9 + seed / 100))
        out.append(row(f"{group}-s{seed}", "pgd:eps=0.1", acc, 0.9 + seed / 100, p=None if group == "m-sa" else 0.01 * (seed + 1)))
    return out


def t_test_p(diffs: list[float]) -> float:
    """Two-sided paired t-test by its formula: t = mean / (sd / sqrt(k)), df = k - 1; for df = 2 the
    t distribution's CDF has a closed form, P(|T| > t) = 1 - t / sqrt(2 + t^2)."""
    k = len(diffs)
    assert k == 3
    t = abs(statistics.fmean(diffs) / (statistics.stdev(diffs) / math.sqrt(k)))
    return 1 - t / math.sqrt(2 + t * t)


def test_split_seed():
    assert split_seed("mnist-bsa-grc-s12") == ("mnist-bsa-grc", 12)
    with pytest.raises(RobenchError, match="no seed suffix"):
        split_seed("mnist-bsa")


def test_means_spreads_and_paired_tests_match_hand_computation():
    out = {(s.group, s.threat): s for s in aggregate_seeds(rows(), baseline="m-sa")}
    bsa = out[("m-bsa", "pgd:eps=0.1")]
    vals = [0.55, 0.41, 0.40]
    diffs = [0.05, 0.01, -0.05]
    assert bsa.seeds == "0/1/2" and bsa.values == "0.55/0.41/0.4"
    assert bsa.mean == pytest.approx(statistics.fmean(vals), abs=1e-6)
    assert bsa.sd == pytest.approx(statistics.stdev(vals), abs=1e-6)
    assert (bsa.min, bsa.max) == (0.40, 0.55)
    assert bsa.clean_mean == pytest.approx(0.91, abs=1e-9)
    assert bsa.delta_mean == pytest.approx(statistics.fmean(diffs), abs=1e-6)
    assert bsa.delta_sd == pytest.approx(statistics.stdev(diffs), abs=1e-6)
    assert bsa.seeds_better == 2
    assert bsa.ttest_p == pytest.approx(t_test_p(diffs), rel=1e-5)
    assert bsa.paired_p == "0.01/0.02/0.03" and bsa.paired_test == "mcnemar-exact"
    sa = out[("m-sa", "pgd:eps=0.1")]
    assert sa.delta_mean is None and sa.baseline == "" and sa.paired_p == "" and sa.paired_test == ""
    clean = out[("m-bsa", "none")]  # identical per-seed values: zero spread of the differences, no t-test
    assert clean.delta_mean == 0.0 and clean.seeds_better == 0 and clean.ttest_p is None


def test_rows_on_another_sample_are_another_measurement():
    rs = rows() + [row(f"{g}-s{k}", "none", 0.8, n=50) for g in ("m-sa", "m-bsa") for k in range(3)]
    out = aggregate_seeds(rs, baseline="m-sa")
    assert [(s.group, s.n, s.threat) for s in out if s.threat == "none"] == [
        ("m-sa", 100, "none"), ("m-bsa", 100, "none"), ("m-sa", 50, "none"), ("m-bsa", 50, "none")]
    assert "(n=50)" in summaries_markdown(out) and "(n=100)" in summaries_markdown(out)


def test_perplexity_lower_is_better():
    rs = [row(f"lm-{v}-s{s}", "none", ppl, metric="perplexity", p=None if v == "sa" else [0.0, 0.25][s])
          for v, ppls in (("sa", [100.0, 110.0]), ("bsa", [90.0, 120.0])) for s, ppl in enumerate(ppls)]
    bsa = next(s for s in aggregate_seeds(rs, baseline="lm-sa") if s.group == "lm-bsa")
    assert bsa.delta_mean == 0.0 and bsa.seeds_better == 1  # seed 0 lower (better), seed 1 higher
    assert bsa.paired_p == "<1e-300/0.25" and bsa.paired_test == "window-clustered-z"  # p = 0: below double precision
    md = summaries_markdown([bsa])
    assert "perplexity (lower is better)" in md and "paired window-test p per seed |" in md


@pytest.mark.parametrize(
    "rs,baseline,fragment",
    [
        (rows() + [row("m-sa-s0", "none", 0.1)], None, "appears twice"),
        (rows(), "m-grc", "is not a model group"),
        ([r for r in rows() if r.model != "m-bsa-s2"], "m-sa", "pair equal seeds"),
    ],
)
def test_inconsistent_inputs_are_refused(rs, baseline, fragment):
    with pytest.raises(RobenchError, match=fragment):
        aggregate_seeds(rs, baseline)


def test_cli_exports_and_plot(tmp_path, cli):
    rs = rows()
    export([r for r in rs if r.model.endswith("s0")], tmp_path / "seed-0.csv", "csv")
    export([r for r in rs if not r.model.endswith("s0")], tmp_path / "seed-rest.json", "json")
    out = tmp_path / "out"
    out.mkdir()
    proc = cli("aggregate", str(tmp_path / "seed-0.csv"), str(tmp_path / "seed-rest.json"), "--baseline", "m-sa",
               "--csv", str(out / "s.csv"), "--markdown", str(out / "s.md"), "--plot", str(out / "s.png"))
    assert proc.returncode == 0, proc.stderr
    got = list(csv.DictReader(io.StringIO((out / "s.csv").read_text())))
    assert [(r["group"], r["threat"]) for r in got] == [("m-sa", "none"), ("m-sa", "pgd:eps=0.1"),
                                                         ("m-bsa", "none"), ("m-bsa", "pgd:eps=0.1")]
    assert got[3]["values"] == "0.55/0.41/0.4" and got[3]["seeds_better"] == "2"
    md = (out / "s.md").read_text()
    assert "| m-bsa | pgd:eps=0.1 | 45.3 ± 8.4 | 55.0 / 41.0 / 40.0 | +0.3 ± 5.0 | 2/3 |" in md
    assert (out / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "m-bsa" in proc.stdout


def test_cli_bad_seed_pattern_exit_2(tmp_path, cli):
    export(rows(), tmp_path / "r.csv", "csv")
    assert_one_line_error(cli("aggregate", str(tmp_path / "r.csv"), "--seed-pattern", "("), "not a regular expression")
    assert_one_line_error(cli("aggregate", str(tmp_path / "r.csv"), "--seed-pattern", r"^(?P<group>m)-(?P<seed>x)$"),
                          "no seed suffix")


@pytest.mark.slow
def test_diagnostics_csvs_aggregate_per_layer_and_length(tmp_path, cli):
    lines = ["model,diagnostic,layer,n_tokens,value,unit"]
    for seed, (u0, u1, s64) in enumerate([(0.1, 0.5, 1.0), (0.3, 0.7, 2.0)]):
        lines += [f"m-sa-s{seed},token_uniformity,0,,{u0},cosine", f"m-sa-s{seed},token_uniformity,1,,{u1},cosine",
                  f"m-sa-s{seed},attention_sensitivity,,64,{s64},ratio"]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    proc = cli("aggregate", str(tmp_path / "d.csv"), "--csv", str(tmp_path / "s.csv"), "--markdown", str(tmp_path / "s.md"))
    assert proc.returncode == 0, proc.stderr
    got = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert [(r["diagnostic"], r["layer"], r["n_tokens"], r["values"], r["mean"]) for r in got] == [
        ("token_uniformity", "0", "", "0.1/0.3", "0.2"), ("token_uniformity", "1", "", "0.5/0.7", "0.6"),
        ("attention_sensitivity", "", "64", "1/2", "1.5")]
    assert float(got[0]["sd"]) == pytest.approx(statistics.stdev([0.1, 0.3]), abs=1e-6)
    md = (tmp_path / "s.md").read_text()
    assert "| model | L0 | L1 |" in md and "| m-sa | 0.200 ± 0.141 | 0.600 ± 0.141 |" in md
    assert "| m-sa | 1.500 ± 0.707 |" in md
    export(rows(), tmp_path / "r.csv", "csv")
    assert_one_line_error(cli("aggregate", str(tmp_path / "d.csv"), str(tmp_path / "r.csv")), "not both")
    assert_one_line_error(cli("aggregate", str(tmp_path / "d.csv"), "--baseline", "m-sa"), "apply to result files")


def test_threat_labels_keep_the_parameters_that_tell_threats_apart():
    from robench.report.summaries import threat_labels

    specs = ["none", "word-swap:rate=0.05", "word-swap:rate=0.1", "fgsm:eps=0.1,target=none",
             "pgd:alpha=0.025,eps=0.1,random_start=1,restarts=1,steps=10,target=none",
             "pgd:alpha=0.025,eps=0.1,random_start=1,restarts=1,steps=20,target=none"]
    assert threat_labels(specs) == {
        "none": "none", "word-swap:rate=0.05": "word-swap:rate=0.05", "word-swap:rate=0.1": "word-swap:rate=0.1",
        "fgsm:eps=0.1,target=none": "fgsm:eps=0.1",
        "pgd:alpha=0.025,eps=0.1,random_start=1,restarts=1,steps=10,target=none": "pgd:alpha=0.025,eps=0.1,steps=10",
        "pgd:alpha=0.025,eps=0.1,random_start=1,restarts=1,steps=20,target=none": "pgd:alpha=0.025,eps=0.1,steps=20"}


def test_cli_dash_is_stdout_and_plot_needs_a_path(tmp_path, cli):
    export(rows(), tmp_path / "r.csv", "csv")
    proc = cli("aggregate", str(tmp_path / "r.csv"), "--baseline", "m-sa", "--csv", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == summaries_csv(aggregate_seeds(rows(), "m-sa"))  # machine output only: no table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]  # no file called "-"
    assert_one_line_error(cli("aggregate", str(tmp_path / "r.csv"), "--plot", "-", cwd=tmp_path), "--plot needs a file path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
