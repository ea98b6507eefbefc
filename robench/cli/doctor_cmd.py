"""``robench doctor``: what is present or missing, and how to fix each."""

from __future__ import annotations

import typer

from robench.cli.app import app, err_console, out_console


@app.command()
def doctor(
    fix: bool = typer.Option(False, "--fix", help="Provision WordNet and stopwords into robench's NLTK dir (offline)."),
    quick: bool = typer.Option(False, "--quick", help="Skip the offline textattack import check (~10 s)."),
) -> None:
    """Check resources (WordNet, stopwords, CUDA, offline mode, optional packages).

    Exit code 0 when everything required is present, 3 when a required resource (WordNet, NLTK's
    stopwords, torchattacks) is missing; optional ones (CUDA, textattack, timm) never fail it.
    """
    import sys

    from rich.table import Table

    from robench.checks.doctor import MISSING_REQUIRED, missing_required, run_checks
    from robench.resources.wordnet import provision

    if fix:
        for line in provision():
            err_console.print(line)
    table = Table(title="robench doctor", caption="exit code 3 when a required check is missing")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail / how to fix")
    checks = run_checks(import_textattack=not quick)
    for c in checks:
        table.add_row(c.name, "ok" if c.ok else ("missing" if c.required else "missing (optional)"), c.detail)
    out_console.print(table)
    missing = missing_required(checks)
    if missing:
        sys.stderr.write(f"robench: doctor: required {', '.join(c.name for c in missing)} missing; see the table for how to fix\n")
        raise typer.Exit(MISSING_REQUIRED)
