"""``robench curve``: accuracy along a parameter sweep -> CSV, AUC table, PNG with CI bands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.options import args_options
from robench.cli.progress import RunDisplay, row_line
from robench.engine.args import CurveArgs
from robench.report.exports import auc_csv as auc_csv_text, check_export_paths, write_exports, write_text_export


@app.command()
@args_options(CurveArgs, exclude=("suite", "threats", "baseline"))  # curve sweeps one --threat, no baseline
def curve(
    csv: Optional[Path] = typer.Option(None, "--csv", help="The points (result schema rows)."),
    json_: Optional[Path] = typer.Option(None, "--json", help="The points as JSON ('-' for stdout)."),
    auc_csv: Optional[Path] = typer.Option(None, "--auc-csv", help="model, threat, key, auc per model."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: one line per model with 95% bands."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
    run: dict = None,
) -> None:
    """Evaluate MODELs along a sweep of one threat parameter; print the curve and its AUC."""
    from robench.engine.curve import curve as run_curve, sweep_specs
    from robench.report.command_tables import curve_table
    from robench.report.plots import close, plot_curve

    exports = {"csv": csv, "json": json_}
    check_export_paths({**exports, "auc-csv": auc_csv, "plot": plot}, run.get("out"))
    args = CurveArgs(**run)
    threat = args.threat
    sweep_specs(threat, args.sweep)  # a bad sweep fails before any model loads
    from robench.engine.distributed import is_main_process

    main = is_main_process()  # under torchrun only rank 0 renders and writes
    show = not quiet and "-" not in (str(csv), str(json_), str(auc_csv)) and main  # stdout carries machine output then
    note = (lambda m: sys.stderr.write(f"robench: {m}\n")) if main else None
    with RunDisplay(show, err_console) as display:
        result = run_curve(args, on_row=lambda row: display.line(row_line(row)), on_progress=display.update, on_note=note)
    if not main:
        return
    if show:
        out_console.print(curve_table(result, threat))
    write_exports(result.rows, exports, err_console)
    if auc_csv is not None:
        write_text_export(auc_csv, auc_csv_text(result, threat), "auc-csv", err_console)
    if plot is not None:
        close(plot_curve(result, plot, threat))
        err_console.print(f"wrote plot -> {plot}")
