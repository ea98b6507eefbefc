"""Progress that tells the truth: a flushed line per finished row and a heartbeat when piped, the
real label and counts, nothing with --quiet, and lines that survive Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console

from conftest import REPO, default_sigint
from robench.cli.progress import RunDisplay


def test_piped_display_writes_rows_and_heartbeats(capsys):
    console = Console(stderr=True, force_terminal=False)
    with RunDisplay(True, console, heartbeat=0.0) as d:
        d.update("m · pgd:eps=0.1", 0, 40)
        time.sleep(0.01)
        d.update("m · pgd:eps=0.1", 16, 40)
        d.line("  m · pgd:eps=0.1: 30.0% (n=40, 0.10s)")
        d.update("m · fgsm:eps=0.1", 40, 40)  # finished: no heartbeat for a done task
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("robench: m · pgd:eps=0.1: 16/40 examples in 0s (") and "left)" in err[0]
    assert err[1] == "  m · pgd:eps=0.1: 30.0% (n=40, 0.10s)"
    assert len(err) == 2


def test_quiet_display_writes_nothing(capsys):
    with RunDisplay(False, Console(stderr=True), heartbeat=0.0) as d:
        d.update("m · clean", 3, 10)
        d.line("row")
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_piped_log_fills_while_running_and_keeps_its_lines_on_ctrl_c():
    cmd = [sys.executable, "-m", "robench", "evaluate", "digits-vit-sa", "digits-vit-bsa", "--threat",
           "pgd:eps=0.1,steps=400", "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ROBENCH_HEARTBEAT": "0.5"}, preexec_fn=default_sigint)
    lines = []
    pgd = "robench: digits-vit-sa · pgd:alpha=0.025,eps=0.1,steps=400: "
    while proc.poll() is None:  # the log fills while the run goes on: rows, then heartbeats
        lines.append(proc.stderr.readline().rstrip("\n"))
        if lines[-1].startswith(pgd):
            break
    assert proc.poll() is None, "the run ended before a heartbeat"
    rows = [line for line in lines if not line.startswith("robench: ")]  # heartbeats of the clean pass may come first
    assert rows[0].startswith("digits-vit-sa on digits (test): n=359 on cpu · ")
    assert rows[1].startswith("  digits-vit-sa · none: ")
    assert " examples in " in lines[-1] and "/s" in lines[-1]
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read().splitlines()
    assert proc.wait(timeout=60) == 130
    assert rest[-1].startswith("robench: interrupted")
