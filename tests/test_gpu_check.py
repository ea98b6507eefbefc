"""benchmarks/gpu_check.sh's logic, on the CPU (a GPU machine runs the same script with --device cuda)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_and_prints_its_table():
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu"], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    stages = [line.split("  ")[0].strip() for line in lines[2:]]
    assert stages[0] == "zoo (default suite)" and "stream clean pass" in stages and stages[-1] == "bsa fast path vs literal"
    assert "flagged: none" in lines[2]
    assert " ok: max rel. error" in lines[-1]
    assert all("agreement" in line for line in lines if line.startswith("stream ") and "total" not in line)
