"""``robench aggregate``: mean and spread over training seeds, paired against a baseline model group."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from robench.cli.app import app, err_console, out_console


@app.command()
def aggregate(
    paths: List[Path] = typer.Argument(..., help="Result files (--csv/--json exports) of the seeds' evaluations, or `robench diagnose --csv` files."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Model group (name without its seed suffix) to compare with, seed by seed (result files only)."),
    seed_pattern: str = typer.Option(r"^(?P<group>.+)-s(?P<seed>\d+)$", "--seed-pattern",
                                     help="Regex with named groups 'group' and 'seed' splitting a model name."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="One row per (model group, data, threat) ('-' for stdout)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Markdown tables, one per dataset ('-' for stdout)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: bars of the mean, a dot per seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table."),
) -> None:
    """Aggregate evaluations of several training seeds: mean ± sd, range, paired differences and tests."""
    import re

    from robench.studies.aggregate import aggregate_seeds, is_diagnostics_file, summaries_csv
    from robench.errors import RobenchError
    from robench.report.command_tables import seed_summary_table
    from robench.report.exports import check_export_paths, write_text_export
    from robench.report.plots import close, plot_summaries
    from robench.report.summaries import summaries_markdown
    from robench.results.schema import read_rows

    try:
        re.compile(seed_pattern)
    except re.error as e:
        raise RobenchError(f"--seed-pattern {seed_pattern!r} is not a regular expression ({e})") from None
    check_export_paths({"csv": csv, "markdown": markdown, "plot": plot})
    kinds = {is_diagnostics_file(p) for p in paths}
    if len(kinds) > 1:
        raise RobenchError("give either result files or `robench diagnose` CSVs, not both")
    if kinds == {True}:
        _diagnostics(paths, baseline, seed_pattern, csv, markdown, plot, quiet)
        return
    summaries = aggregate_seeds([r for p in paths for r in read_rows(p)], baseline, seed_pattern)
    if not quiet and "-" not in (str(csv), str(markdown)):  # stdout carries the machine output then
        out_console.print(seed_summary_table(summaries, baseline))
    if csv is not None:
        write_text_export(csv, summaries_csv(summaries), f"{len(summaries)} summaries", err_console)
    if markdown is not None:
        write_text_export(markdown, summaries_markdown(summaries), "markdown", err_console)
    if plot is not None:
        close(plot_summaries(summaries, plot))
        err_console.print(f"wrote plot -> {plot}")


def _diagnostics(paths: List[Path], baseline: Optional[str], seed_pattern: str, csv: Optional[Path],
                 markdown: Optional[Path], plot: Optional[Path], quiet: bool) -> None:
    """``robench diagnose`` CSVs: mean ± sd over seeds per model group, diagnostic and layer (or N)."""
    from robench.studies.aggregate import aggregate_diagnostics, diagnostics_csv, read_diagnostics
    from robench.report.exports import write_text_export
    from robench.report.summaries import diagnostics_markdown
    from robench.errors import RobenchError

    if baseline is not None or plot is not None:
        raise RobenchError("--baseline and --plot apply to result files; diagnostics take --csv and --markdown")
    summaries = aggregate_diagnostics([r for p in paths for r in read_diagnostics(p)], seed_pattern)
    if not quiet and "-" not in (str(csv), str(markdown)):
        out_console.print(diagnostics_markdown(summaries), highlight=False, markup=False)
    if csv is not None:
        write_text_export(csv, diagnostics_csv(summaries), f"{len(summaries)} summaries", err_console)
    if markdown is not None:
        write_text_export(markdown, diagnostics_markdown(summaries), "markdown", err_console)
