"""``robench merge``: combine shard outputs (``--shard i/n`` or torchrun) into the run's leaderboard."""

from __future__ import annotations

import typer

from robench.cli.app import app, err_console, out_console, warn
from robench.cli.options import CsvExport, JsonExport, MarkdownExport, args_options
from robench.engine.args import MergeArgs
from robench.report.exports import check_export_paths, write_exports


@app.command()
@args_options(MergeArgs)
def merge(
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table."),
    run: dict = None,
) -> None:
    """Combine the shards of one run, refusing mismatched configs, missing shards and double counting."""
    from robench.engine.merge import merge as run_merge
    from robench.report.tables import leaderboard_tables

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths(exports, run.get("out"))
    rows, _ = run_merge(MergeArgs(**run))
    for r in rows:
        for note in r.flag_notes.split("; ") if r.flags else []:
            warn(f"{r.model} · {r.threat}: {note}")
    if not quiet and not any(str(p) == "-" for p in exports.values() if p is not None):
        for table in leaderboard_tables(rows):
            out_console.print(table)
    write_exports(rows, exports, err_console)
