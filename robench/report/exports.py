"""Writing a command's outputs: the row exports (CSV/JSON/Markdown), other text exports, the AUC CSV
of a curve, and the check, before any work, that each destination can be written.

A text export goes to stdout for ``-`` (machine output) or atomically to its file, with a
``wrote ... -> PATH`` note on stderr.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from robench.errors import RobenchError
from robench.fileio import atomic_write_text, check_output_collisions

if TYPE_CHECKING:
    from rich.console import Console

    from robench.engine.curve import CurveResult
    from robench.results.schema import ResultRow


def check_export_paths(paths: dict[str, Optional[Path]], out: Optional[Path] = None) -> None:
    """Fail before any work if an export could not be written, or two outputs (or an export and the
    ``--out`` records directory ``out``) would land on one destination. ``paths``: option -> path."""
    check_output_collisions(paths, out)
    for flag, p in paths.items():
        if p is not None and str(p) == "-" and flag == "plot":
            raise RobenchError("--plot needs a file path ('-', stdout, is for the text exports)")
        if p is None or str(p) == "-":
            continue
        if p.is_dir():
            raise RobenchError(f"--{flag} {p} is a directory; give a file path")
        if not p.parent.is_dir():
            raise RobenchError(f"--{flag} {p}: directory {p.parent} does not exist; create it first")
        try:  # an unwritable directory fails now, not after an hour of attacks
            with tempfile.TemporaryFile(dir=p.parent):
                pass
        except OSError as e:
            raise RobenchError(f"--{flag} {p}: cannot write in {p.parent} ({e.strerror}); choose another path") from None


def _stderr_console() -> "Console":
    from rich.console import Console

    return Console(stderr=True)


def write_text_export(path: Path, text: str, what: str, console: "Console | None" = None) -> None:
    """``text`` to stdout for ``-`` (machine output), else atomically to ``path`` with a note on
    stderr (``console``, a stderr Rich console; a new one if not given)."""
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(path, text)
        (console or _stderr_console()).print(f"wrote {what} -> {path}")


def write_exports(rows: Sequence["ResultRow"], paths: dict[str, Optional[Path]], console: "Console | None" = None) -> None:
    """The result rows in each format of ``paths`` (``csv``, ``json``, ``markdown`` -> path or None)."""
    from robench.results.schema import EXPORTERS

    for fmt, p in paths.items():
        if p is not None:
            write_text_export(p, EXPORTERS[fmt](rows), fmt, console)


def auc_csv(result: "CurveResult", threat: str) -> str:
    """``model,threat,key,auc``, one line per model, quoted where a value needs it (RFC 4180)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "threat", "key", "auc"])
    for model, auc in result.auc.items():
        w.writerow([model, threat, result.key, f"{auc}"])  # str(float), as before
    return buf.getvalue()
