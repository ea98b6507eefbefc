"""What a running command shows on stderr while it works.

In a terminal: a Rich progress display for the (model, threat) being computed -- its label,
examples done / total, rate and time left -- with one line per finished row printed above it.
Elsewhere (CI logs, ``2>log``, slurm): plain lines, each written and flushed as it happens -- one
per finished row, and a heartbeat every 30 s (``$ROBENCH_HEARTBEAT``) on a long (model, threat) -- so a
log is never silent for minutes and keeps every line if the run is interrupted. ``--quiet``
shows neither (warnings and errors still go to stderr).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from rich.console import Console

HEARTBEAT_SECONDS = 30.0  # ``$ROBENCH_HEARTBEAT`` overrides it (seconds)


def heartbeat_seconds() -> float:
    """The heartbeat interval of piped output: ``$ROBENCH_HEARTBEAT`` or 30 s."""
    raw = os.environ.get("ROBENCH_HEARTBEAT", "").strip()
    try:
        return max(0.0, float(raw)) if raw else HEARTBEAT_SECONDS
    except ValueError:
        return HEARTBEAT_SECONDS


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


class RunDisplay:
    """Progress and row lines of one command; use as a context manager."""

    def __init__(self, show: bool, console: Console, heartbeat: float | None = None) -> None:
        self.show = show
        self.console = console
        self.live = show and console.is_terminal
        self.heartbeat = heartbeat_seconds() if heartbeat is None else heartbeat
        self._progress: Any = None
        self._task: Any = None
        self._what: str | None = None
        self._started = self._last = 0.0
        self._done = self._done0 = self._total = 0  # done0: already done when it started (a resumed journal)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def __enter__(self) -> "RunDisplay":
        if self.show and not self.live and self.heartbeat > 0:
            # a timer, not the batches, paces the heartbeat: one long batch must not silence the log
            self._beats = threading.Thread(target=self._beat_loop, daemon=True)
            self._beats.start()
        if self.live:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), TimeElapsedColumn(), console=self.console, transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join()
        if self._progress is not None:
            self._progress.stop()

    def update(self, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` examples of ``what`` (a model and threat) are finished."""
        if not self.show:
            return
        with self._lock:
            now = time.monotonic()
            started = what != self._what
            if started:
                self._what, self._started, self._last, self._done0 = what, now, now, done
                if self._progress is not None:
                    if self._task is not None:
                        self._progress.remove_task(self._task)
                    self._task = self._progress.add_task(what, total=total or None, rate="")
            self._done, self._total = done, total
            if self._progress is not None:
                rate = self._rate(now)
                self._progress.update(self._task, completed=done, total=total or None,
                                      rate=f"{rate:.1f} ex/s" if done > self._done0 else "")
            elif not started and self.heartbeat == 0 and done < total:
                self._beat(now)

    def _rate(self, now: float) -> float:
        """Examples per second of this run's own work (journaled examples are not counted)."""
        elapsed = now - self._started
        return (self._done - self._done0) / elapsed if elapsed > 0 else 0.0

    def _beat(self, now: float) -> None:
        rate = self._rate(now)
        left = f", about {_duration((self._total - self._done) / rate)} left" if rate > 0 else ""
        self._write(f"robench: {self._what}: {self._done}/{self._total} examples in {_duration(now - self._started)} "
                    f"({rate:.1f}/s{left})")
        self._last = now

    def _beat_loop(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat / 4)):
            with self._lock:
                now = time.monotonic()
                if self._what is not None and self._done < self._total and now - self._last >= self.heartbeat:
                    self._beat(now)

    def line(self, text: str) -> None:
        """One line (a finished row, a header), above the live display or straight to the log."""
        if not self.show:
            return
        with self._lock:
            if self._progress is not None:
                self._progress.console.print(text, highlight=False, markup=False, soft_wrap=True)
            else:
                self._write(text)
            self._last = time.monotonic()

    @staticmethod
    def _write(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def row_line(row: Any) -> str:
    """A finished row in one line: model (and data part), the threat's short form, the number."""
    from robench.report.tables import short_threat

    value = f"perplexity {row.attacked_acc:.2f}" if row.metric == "perplexity" else f"{100 * row.attacked_acc:.1f}%"
    if row.attacked_top5 is not None:
        value += f" (top-5 {100 * row.attacked_top5:.1f}%)"
    part = f" [{row.split}]" if row.dataset.startswith("imagenet-c:") else ""
    return f"  {row.model}{part} · {short_threat(row.threat)}: {value} (n={row.n}, {row.seconds:.2f}s)"
