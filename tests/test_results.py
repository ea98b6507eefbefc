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
        s.stem for s in SCRIPTS if s.stem not in ("lib", "run-all", "diagnostics"))


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
