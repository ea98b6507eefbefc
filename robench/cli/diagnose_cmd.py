"""``robench diagnose``: token uniformity and SNR per layer, attention sensitivity vs N -> tables, CSV, PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.options import DeferredOptions, deferred_args_options


@app.command(cls=DeferredOptions)
@deferred_args_options("robench.studies.diagnose.run", "DiagnoseArgs")  # it imports torch: not at `robench --help`
def diagnose(
    csv: Optional[Path] = typer.Option(None, "--csv", help="Long format: model, diagnostic, layer, n_tokens, value, unit ('-' for stdout)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG with three panels."),
    run: dict = None,
) -> None:
    """Mechanism diagnostics: token uniformity and SNR per layer, first-layer attention sensitivity vs N."""
    from robench.report.command_tables import diagnostics_tables
    from robench.report.exports import check_export_paths, write_text_export
    from robench.report.plots import close, plot_diagnostics
    from robench.studies.diagnose.run import DiagnoseArgs, diagnose as run_diagnose

    check_export_paths({"csv": csv, "plot": plot})
    args = DiagnoseArgs(**run)
    result = run_diagnose(args)
    if str(csv) != "-":  # stdout carries the CSV then
        for title, table, caption in diagnostics_tables(result, args.seed, args.delta, args.draws):
            out_console.print(f"[bold]{title}[/bold]", highlight=False)
            out_console.print(table)
            out_console.print(caption, highlight=False)
    if csv is not None:
        write_text_export(csv, result.to_csv(), f"{len(result.rows)} rows", err_console)
    if plot is not None:
        close(plot_diagnostics(result, plot))
        err_console.print(f"wrote plot -> {plot}")
