"""Start-up wall time of `robench --help` and `robench threats` against the 1.5 s goal.

Every run is a fresh subprocess; the commands are interleaved (one round runs each once) so that
load on a shared machine hits all of them alike. References: `python -c pass` (the interpreter
alone) and `python -c "import torch"` (what a command that imports torch pays at least). Prints
the median of each, its ratio to the 1.5 s goal and to `import torch`.

    .venv/bin/python benchmarks/startup.py [-n 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 1.5


def robench_cmd() -> list[str]:
    """The installed console script next to this interpreter (what users run), else ``-m robench``."""
    script = Path(sys.executable).with_name("robench")
    if script.exists():
        return [str(script)]
    found = shutil.which("robench")
    return [found] if found else [sys.executable, "-m", "robench"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=7, help="runs of each command (default 7)")
    args = ap.parse_args()

    rb = robench_cmd()
    commands = {
        "robench --help": [*rb, "--help"],
        "robench threats": [*rb, "threats"],
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    subprocess.run(commands["robench threats"], capture_output=True, check=True)  # warm the file cache
    subprocess.run(commands['python -c "import torch"'], capture_output=True, check=True)
    for _ in range(args.n):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)

    torch_s = statistics.median(times['python -c "import torch"'])
    print(f"{args.n} interleaved runs each, fresh subprocesses; python {sys.version.split()[0]}")
    print(f"{'command':28s} {'median':>8s} {'min':>7s} {'max':>7s} {'/ 1.5 s goal':>13s} {'/ import torch':>15s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:28s} {med:7.3f}s {min(ts):6.3f}s {max(ts):6.3f}s {med / GOAL_S:12.2f}x {med / torch_s:14.2f}x")
    verdict = all(statistics.median(times[c]) <= GOAL_S for c in ("robench --help", "robench threats"))
    print(f"goal (both robench commands <= {GOAL_S} s median): {'met' if verdict else 'NOT met'}")


if __name__ == "__main__":
    main()
