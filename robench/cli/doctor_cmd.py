"""``robench doctor``: what is present or missing, and how to fix each."""

from __future__ import annotations

import typer

from robench.cli.app import app, err_console, out_console


@app.command()
def doctor(
    fix: bool = typer.Option(False, "--fix", help="Provision WordNet and stopwords into robench's NLTK dir (offline)."),
    quick: bool = typer.Option(False, "--quick", help="Skip the offline textattack import check (~10 s)."),
) -> None:
    """Check resources (WordNet, stopwords, CUDA, offline mode, optional packages)."""
    from rich.table import Table

    from robench.doctor import run_checks
    from robench.resources.wordnet import provision

    if fix:
        for line in provision():
            err_console.print(line)
    table = Table(title="robench doctor")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail / how to fix")
    for c in run_checks(import_textattack=not quick):
        table.add_row(c.name, "ok" if c.ok else "missing", c.detail)
    out_console.print(table)
