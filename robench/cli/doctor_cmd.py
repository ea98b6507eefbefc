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

    from robench.checks.doctor import MISSING_REQUIRED, missing_required, run_checks
    from robench.report.command_tables import doctor_table
    from robench.resources.wordnet import provision

    if fix:
        for line in provision():
            err_console.print(line)
    checks = run_checks(import_textattack=not quick)
    out_console.print(doctor_table(checks))
    missing = missing_required(checks)
    if missing:
        sys.stderr.write(f"robench: doctor: required {', '.join(c.name for c in missing)} missing; see the table for how to fix\n")
        raise typer.Exit(MISSING_REQUIRED)
