"""``robench leaderboard``: re-render stored results (CSV/JSON/JSONL) and re-export them."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.options import CsvExport, JsonExport, MarkdownExport
from robench.report.exports import check_export_paths, write_exports


@app.command()
def leaderboard(
    paths: List[Path] = typer.Argument(..., help="Result files written by --csv/--json (or JSONL)."),
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
) -> None:
    """Show stored results as a leaderboard; optionally re-export them."""
    from robench.report.tables import leaderboard_tables
    from robench.results.schema import read_rows

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths(exports)
    rows = [r for p in paths for r in read_rows(p)]
    if not any(str(p) == "-" for p in exports.values() if p is not None):
        for table in leaderboard_tables(rows):
            out_console.print(table)
    write_exports(rows, exports, err_console)
