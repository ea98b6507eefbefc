"""``robench merge``: combine shard outputs (``--shard i/n`` or torchrun) into the run's leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from robench.cli.app import app, out_console
from robench.cli.options import CsvExport, JsonExport, MarkdownExport
from robench.cli.evaluate_cmd import check_export_paths, warn, write_exports


@app.command()
def merge(
    dirs: List[Path] = typer.Argument(..., help="--out DIR of the shards (holding shard-i-of-n folders), or shard folders."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the merged per-example records and rows.json here."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Model to compare against: paired difference + exact McNemar p."),
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table."),
) -> None:
    """Combine the shards of one run, refusing mismatched configs, missing shards and double counting."""
    from robench.engine.merge import MergeArgs, merge as run_merge
    from robench.report.tables import leaderboard_tables

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths(exports, out)
    rows, _ = run_merge(MergeArgs(dirs=dirs, out=out, baseline=baseline))
    for r in rows:
        for note in r.flag_notes.split("; ") if r.flags else []:
            warn(f"{r.model} · {r.threat}: {note}")
    if not quiet and not any(str(p) == "-" for p in exports.values() if p is not None):
        for table in leaderboard_tables(rows):
            out_console.print(table)
    write_exports(rows, exports)
