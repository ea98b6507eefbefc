"""``robench evaluate``: leaderboard of every MODEL on its dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from robench.cli.app import app, err_console, out_console, warn
from robench.cli.options import CsvExport, JsonExport, MarkdownExport, args_options
from robench.cli.progress import RunDisplay, row_line
from robench.engine.args import EvaluateArgs
from robench.report.exports import check_export_paths, write_exports


@app.command()
@args_options(EvaluateArgs)
def evaluate(
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: the leaderboard as grouped bars with 95% error bars."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
    run: dict = None,
) -> None:
    """Evaluate checkpoints under a threat suite and print a leaderboard (accuracy with 95% Wilson intervals)."""
    from robench.engine.distributed import is_main_process
    from robench.engine.evaluate import evaluate as run_evaluate
    from robench.report.tables import leaderboard_tables

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths({**exports, "plot": plot}, run.get("out"))
    args = EvaluateArgs(**run)
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
    write_exports(rows, exports, err_console)
    if plot is not None:
        from robench.report.plots import close, plot_leaderboard

        close(plot_leaderboard(rows, plot))
        err_console.print(f"wrote plot -> {plot}")
