"""``robench evaluate``: leaderboard of every MODEL on its dataset."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.options import CsvExport, JsonExport, MarkdownExport, run_options
from robench.cli.progress import RunDisplay, row_line


def check_export_paths(paths: dict[str, Optional[Path]], out: Optional[Path] = None) -> None:
    """Fail before any work if an export could not be written, or two outputs (or an export and the
    ``--out`` records directory ``out``) would land on one destination."""
    from robench.errors import RobenchError
    from robench.fileio import check_output_collisions

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


def warn(message: str) -> None:
    """Warnings go to stderr as one line each (never into machine output on stdout)."""
    sys.stderr.write(f"robench: warning: {' '.join(message.split())}\n")


def write_text_export(path: Path, text: str, what: str) -> None:
    """``text`` to stdout for ``-`` (machine output), else atomically to ``path`` with a note on stderr."""
    from robench.fileio import atomic_write_text

    if str(path) == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(path, text)
        err_console.print(f"wrote {what} -> {path}")


def write_exports(rows, paths: dict[str, Optional[Path]]) -> None:
    from robench.results.schema import EXPORTERS

    for fmt, p in paths.items():
        if p is not None:
            write_text_export(p, EXPORTERS[fmt](rows), fmt)


@app.command()
@run_options
def evaluate(
    models: List[str] = typer.Argument(None, help="Zoo names or checkpoint paths (default: the whole zoo)."),
    suite: str = typer.Option("default", "--suite", help="Threat suite: a name in attacks/ (default, paper, clean) or a .toml path."),
    threat: Optional[List[str]] = typer.Option(None, "--threat", help="Ad-hoc threat spec (repeatable); replaces the suite."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Model to compare against: paired difference + exact McNemar p."),
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: the leaderboard as grouped bars with 95% error bars."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
    run: dict = None,
) -> None:
    """Evaluate checkpoints under a threat suite and print a leaderboard (accuracy with 95% Wilson intervals)."""
    from robench.engine.distributed import is_main_process
    from robench.engine.evaluate import EvaluateArgs, evaluate as run_evaluate
    from robench.report.tables import leaderboard_tables

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths({**exports, "plot": plot}, run["out"])
    args = EvaluateArgs(models=models or [], suite=suite, threats=threat or [], baseline=baseline, **run)
    machine = any(str(p) == "-" for p in exports.values() if p is not None)
    main = is_main_process()  # under torchrun only rank 0 renders and writes
    show = not quiet and not machine and main


    def check_models(loaded) -> None:  # before any work: an output that cannot be made is refused now
        from robench.data.base import LM
        from robench.errors import RobenchError

        if plot is not None and any(m.task == LM for m in loaded):
            raise RobenchError("--plot draws accuracies; language models give perplexity rows, which it does not "
                               "draw yet: drop --plot (the --csv/--json/--markdown exports hold the perplexities)")

    with RunDisplay(show, err_console) as display:
        rows = run_evaluate(args, on_row=lambda row: display.line(row_line(row)), on_progress=display.update,
                            on_warning=warn if main else None,
                            on_note=(lambda m: sys.stderr.write(f"robench: {m}\n")) if main else None,
                            on_header=display.line, on_models=check_models)
    if not main:
        return
    if show:
        for table in leaderboard_tables(rows):
            out_console.print(table)
    write_exports(rows, exports)
    if plot is not None:
        from robench.report.plots import close, plot_leaderboard

        close(plot_leaderboard(rows, plot))
        err_console.print(f"wrote plot -> {plot}")
