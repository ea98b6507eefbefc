"""Start-up: `robench --help` and `robench threats` must not import torch or other heavy libraries.

Each check runs the real command in a fresh interpreter and then inspects ``sys.modules`` (an import
property, not a timing; `benchmarks/startup.py` measures the wall time).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

HEAVY = ("torch", "torchattacks", "timm", "textattack", "transformers", "datasets")

# Runs a robench command in-process the way the console script does, then reports which heavy
# modules ended up imported (the command's own output stays on stdout, the report goes to stderr).
_PROBE = """
import json, sys
from robench.cli import app
rc = app({args!r}, standalone_mode=False)
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("\\nHEAVY=" + json.dumps(heavy) + "\\n")
sys.exit(rc or 0)
"""


def run_probe(*args: str) -> tuple[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(args=list(args), heavy=HEAVY)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    report = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    assert len(report) == 1, proc.stderr[-2000:]
    return proc.stdout, json.loads(report[0][len("HEAVY="):])


def test_help_does_not_import_torch():
    out, heavy = run_probe("--help")
    assert "threats" in out and "evaluate" in out
    assert heavy == [], f"`robench --help` imported {heavy}"


def test_version_does_not_import_torch():
    from robench import __version__

    out, heavy = run_probe("--version")
    assert out == f"robench {__version__}\n"
    assert heavy == [], f"`robench --version` imported {heavy}"


@pytest.mark.parametrize("args", [("threats",), ("threats", "--json")], ids=["table", "json"])
def test_threats_listing_does_not_import_torch(args):
    from robench.threats.registry import threat_classes

    out, heavy = run_probe(*args)
    names = list(threat_classes())
    if "--json" in args:
        assert [t["name"] for t in json.loads(out)["threats"]] == names
    else:
        assert all(name in out for name in names)
    assert heavy == [], f"`robench {' '.join(args)}` imported {heavy}"


def test_threat_registry_and_specs_do_not_import_torch():
    """Importing every threat module and building threats from specs stays torch-free: torch
    is imported only when a threat computes."""
    code = (
        "import sys\n"
        "from robench.threats.registry import build_threat, threat_classes\n"
        "from robench.threats.suite import load_suite\n"
        "assert len(threat_classes()) > 0\n"
        "build_threat('pgd:eps=8/255'); build_threat('corruption:name=fog,severity=2'); build_threat('pwws-fast')\n"
        "load_suite('default')\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
