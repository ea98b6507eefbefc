"""The README's Python examples run as written (so they cannot drift from the library).

Every ```python block of README.md is executed verbatim, twice, in one fresh interpreter: the
library API must work the first time and any time after (``import robench; robench.evaluate(...)``
next to ``from robench.engine.evaluate import ...``).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_python_blocks() -> list[str]:
    return _BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_has_python_examples():
    blocks = readme_python_blocks()
    assert blocks and any("robench.evaluate(" in b for b in blocks)


@pytest.mark.slow
def test_readme_python_blocks_run_verbatim_twice_in_one_process():
    # each block runs in its own namespace; the second round reuses the interpreter (modules stay imported).
    # `python -c` from the repository: this checkout's robench is the one imported
    script = (
        "import sys\n"
        f"blocks = {readme_python_blocks()!r}\n"
        "for round_ in (1, 2):\n"
        "    for k, code in enumerate(blocks):\n"
        "        exec(compile(code, f'README.md python block {k + 1}', 'exec'), {'__name__': '__readme__'})\n"
        "sys.stdout.write('README OK\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("README OK")


def test_the_package_exports_the_commands_functions():
    # robench.evaluate is the engine's function, whether robench.engine.evaluate was imported first or not
    code = (
        "import robench\n"
        "first = robench.evaluate\n"
        "from robench.engine.args import AttackArgs, EvaluateArgs\n"
        "from robench.engine.attack import attack\n"
        "from robench.engine.evaluate import evaluate\n"
        "from robench.training.classifier import TrainArgs, train\n"
        "assert robench.evaluate is first is evaluate and robench.EvaluateArgs is EvaluateArgs\n"
        "assert robench.attack is attack and robench.AttackArgs is AttackArgs\n"
        "assert robench.train is train and robench.TrainArgs is TrainArgs\n"
        "try:\n"
        "    robench.no_such_thing\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_thing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('unknown attribute did not raise')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
