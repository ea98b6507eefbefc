"""Shared fixtures: tiny configs, a subprocess runner for the CLI's exit-code contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m robench ARGS`` and capture its output (the real exit-code contract)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "robench", *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO,
        timeout=600,
    )


@pytest.fixture
def cli():
    return run_cli


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT back to its default action. A shell
    that runs the suite in the background (``.ci/run &`` without job control) hands SIGINT down
    ignored, Python then installs no KeyboardInterrupt handler, and the signal would do nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="session")
def wordnet_available():
    from robench.resources.wordnet import find_wordnet

    if find_wordnet() is None:
        pytest.skip("WordNet is not installed (apt-get install wordnet-base wordnet-sense-index)")
