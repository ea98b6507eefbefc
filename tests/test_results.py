"""The published studies in results/studies/: scripts parse, summaries are what their seed files give."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from robench.studies.aggregate import aggregate_diagnostics, aggregate_seeds, diagnostics_csv, read_diagnostics, summaries_csv
from robench.results.schema import read_rows

STUDIES = Path(__file__).resolve().parent.parent / "results" / "studies"
SCRIPTS = sorted(STUDIES.glob("*.sh"))
SUMMARIES = sorted(STUDIES.glob("*/summary.csv"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_study_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_study_is_published():
    assert sorted(p.parent.name for p in SUMMARIES) == sorted(
        s.stem for s in SCRIPTS if s.stem not in ("lib", "run-all", "diagnostics", "denoise"))


def test_denoise_summary_is_the_aggregate_of_its_results():
    """results/studies/denoise/summary.md is what the study's report makes of its committed results.csv
    (denoise.sh writes both; it is no rows export, so it has its own check)."""
    from robench.studies.denoise.report import read_rows as read_denoise, summary_md

    out = STUDIES / "denoise"
    assert (out / "summary.md").read_text() == summary_md(read_denoise(out / "results.csv"))


@pytest.mark.parametrize("summary", SUMMARIES, ids=[s.parent.name for s in SUMMARIES])
def test_summary_is_the_aggregate_of_its_seed_files(summary):
    """summary.csv == `robench aggregate seed-*.csv --baseline PREFIX-sa` (lib.sh's summarize) over the
    committed files, PREFIX as the script declares it (`study PREFIX DIR`)."""
    script = (STUDIES / f"{summary.parent.name}.sh").read_text()
    baseline = re.search(r"^study (\S+) ", script, re.M)[1] + "-sa"
    rows = [r for p in sorted(summary.parent.glob("seed-*.csv")) for r in read_rows(p)]
    assert summaries_csv(aggregate_seeds(rows, baseline)) == summary.read_text()


@pytest.mark.parametrize("summary", sorted(STUDIES.glob("diagnostics/*-summary.csv")), ids=lambda p: p.name)
def test_diagnostics_summary_is_the_aggregate_of_its_csv(summary):
    source = summary.with_name(summary.name.replace("-summary", ""))
    assert diagnostics_csv(aggregate_diagnostics(read_diagnostics(source))) == summary.read_text()


RESULTS = STUDIES.parent


def _uncommitted(p: Path) -> bool:
    """A study's checkpoints and generated inputs (results/studies/*/{models,data}/, gitignored)."""
    parts = p.relative_to(RESULTS).parts
    return len(parts) > 3 and parts[0] == "studies" and parts[2] in ("models", "data")


RESULT_FILES = sorted(p for p in RESULTS.rglob("*") if p.suffix in (".csv", ".json") and not _uncommitted(p))
ROW_FILES = [p for p in RESULT_FILES if p.read_text().startswith("model,checkpoint_sha256,")]
OTHER_HEADERS = ("group,", "model,diagnostic,", "model,threat,key,auc",  # aggregate summaries, diagnose CSVs, curve AUCs
                 "signal,sigma,method,seed,")  # the denoising study


def test_every_committed_results_file_is_known():
    """Each committed .csv/.json is a rows export (tested below) or one of the other exports, so that
    no rows file escapes the reading tests."""
    assert len(ROW_FILES) >= 15
    for p in set(RESULT_FILES) - set(ROW_FILES):
        assert p.read_text().startswith(OTHER_HEADERS), p


@pytest.mark.parametrize("path", ROW_FILES, ids=[str(p.relative_to(RESULTS)) for p in ROW_FILES])
def test_committed_rows_read_with_their_paired_test(path):
    """Files written before ``paired_p``/``paired_test`` still read: ``mcnemar_p`` lands in
    ``paired_p``, and the test behind it is the one robench ran for the row's metric."""
    import csv

    raw = list(csv.DictReader(path.open()))
    rows = read_rows(path)
    assert len(rows) == len(raw)
    for d, r in zip(raw, rows):
        p = d.get("paired_p", d.get("mcnemar_p", ""))
        assert r.paired_p == (None if p == "" else float(f"{float(p):.6g}"))  # p-values keep 6 significant digits
        expected = "" if p == "" else {"accuracy": "mcnemar-exact", "perplexity": "window-clustered-z"}[d.get("metric") or "accuracy"]
        assert r.paired_test == d.get("paired_test", expected)


def test_leaderboard_reads_every_committed_rows_file(cli):
    """`robench leaderboard` on the committed files: exit 0, and the published .txt leaderboards are
    what it prints for their CSVs."""
    env = {"COLUMNS": ""}  # the published tables were printed piped (robench.cli.app: 200 columns wide)
    proc = cli("leaderboard", *map(str, ROW_FILES), env=env)
    assert proc.returncode == 0, proc.stderr
    for txt in sorted(RESULTS.glob("*.txt")):
        proc = cli("leaderboard", str(txt.with_suffix(".csv")), env=env)
        assert proc.returncode == 0 and proc.stdout == txt.read_text(), txt.name


def test_paired_columns_round_trip_and_old_json_reads(tmp_path):
    import json
    from dataclasses import asdict

    from robench.results.schema import ResultRow, export

    row = ResultRow(model="m", checkpoint_sha256="0" * 64, task="language-modeling", dataset="d", split="test", n=10,
                    threat="none", clean_acc=50.0, attacked_acc=50.0, attacked_ci_low=45.0, attacked_ci_high=55.0,
                    attack_success_rate=0.0, mean_perturbation=0.0, perturbation_unit="none", mean_queries=0.0,
                    seconds=1.0, seed=0, device="cpu", robench_version="0", baseline="b", delta_vs_baseline=-2.0,
                    paired_p=0.0123456789, paired_test="window-clustered-z", metric="perplexity")
    for fmt, name in (("csv", "rows.csv"), ("json", "rows.json")):
        export([row], tmp_path / name, fmt)
        assert read_rows(tmp_path / name) == [row] and row.paired_p == 0.0123457
    old = {k: v for k, v in asdict(row).items() if k not in ("paired_p", "paired_test")}
    (tmp_path / "old.json").write_text(json.dumps([{**old, "mcnemar_p": 0.25}]))
    back = read_rows(tmp_path / "old.json")[0]
    assert (back.paired_p, back.paired_test) == (0.25, "window-clustered-z")
    (tmp_path / "old.json").write_text(json.dumps([{**old, "metric": "accuracy", "mcnemar_p": None}]))
    assert read_rows(tmp_path / "old.json")[0].paired_test == ""  # no p-value, no test
