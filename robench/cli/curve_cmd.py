"""``robench curve``: accuracy along a parameter sweep -> CSV, AUC table, PNG with CI bands."""

from __future__ import annotations

import sys

from pathlib import Path
from typing import List, Optional

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.options import run_options
from robench.cli.evaluate_cmd import check_export_paths, write_exports
from robench.cli.progress import RunDisplay, row_line


@app.command()
@run_options
def curve(
    models: List[str] = typer.Argument(..., help="Zoo names or checkpoint paths."),
    threat: str = typer.Option(..., "--threat", help="Base threat spec, e.g. pgd or corruption:name=fog."),
    sweep: str = typer.Option(..., "--sweep", help="key=v1,v2,... e.g. eps=0,1/255,2/255,4/255 or severity=0,1,2,3,4,5."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="The points (result schema rows)."),
    json_: Optional[Path] = typer.Option(None, "--json", help="The points as JSON ('-' for stdout)."),
    auc_csv: Optional[Path] = typer.Option(None, "--auc-csv", help="model, threat, key, auc per model."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: one line per model with 95% bands."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
    run: dict = None,
) -> None:
    """Evaluate MODELs along a sweep of one threat parameter; print the curve and its AUC."""
    from rich.table import Table

    from robench.engine.curve import CurveArgs, curve as run_curve
    from robench.fileio import atomic_write_text
    from robench.report.plots import close, plot_curve
    from robench.threats.spec import format_number

    exports = {"csv": csv, "json": json_}
    check_export_paths({**exports, "auc-csv": auc_csv, "plot": plot}, run["out"])
    args = CurveArgs(models=models, threat=threat, sweep=sweep, **run)
    from robench.engine.curve import sweep_specs

    _, xs, _ = sweep_specs(threat, sweep)
    from robench.engine.distributed import is_main_process

    main = is_main_process()  # under torchrun only rank 0 renders and writes
    show = not quiet and str(json_) != "-" and main
    note = (lambda m: sys.stderr.write(f"robench: {m}\n")) if main else None
    with RunDisplay(show, err_console) as display:
        result = run_curve(args, on_row=lambda row: display.line(row_line(row)), on_progress=display.update, on_note=note)
    if not main:
        return
    if show:
        table = Table(title=f"robench curve: {threat} over {result.key}",
                      caption="accuracy in %, higher is better; ± is the 95% Wilson half-width; AUC = trapezoid / range")
        table.add_column("model", no_wrap=True)
        for x in result.xs:
            table.add_column(f"{result.key}={format_number(x)}", justify="right")
        table.add_column("AUC", justify="right")
        for model, auc in result.auc.items():
            cells = [f"{100 * r.attacked_acc:.1f} ±{100 * (r.attacked_ci_high - r.attacked_ci_low) / 2:.1f}" for r in result.points(model)]
            table.add_row(model, *cells, f"{100 * auc:.1f}")
        out_console.print(table)
    write_exports(result.rows, exports)
    if auc_csv is not None:
        atomic_write_text(auc_csv, "model,threat,key,auc\n" + "".join(
            f"{m},\"{threat}\",{result.key},{a}\n" for m, a in result.auc.items()))
    if plot is not None:
        close(plot_curve(result, plot, threat))
        err_console.print(f"wrote plot -> {plot}")
