"""``robench models``: the zoo and the registered architectures."""

from __future__ import annotations

import typer

from robench.cli.app import app, out_console


@app.command()
def models(
    json_out: bool = typer.Option(False, "--json", help="Machine output on stdout."),
) -> None:
    """List the model zoo (name, task, variant, params, clean accuracy), the architectures and their options."""
    import json

    from robench.checkpoint.card import Card
    from robench.models.loading import list_zoo, zoo_dir
    from robench.models.config import VARIANTS, arch_options_json
    from robench.models.registry import list_families
    from robench.report.command_tables import arch_options_table, zoo_tables

    entries = []
    for name in list_zoo():
        card = Card.read(zoo_dir() / f"{name}.json")
        ev = card.evaluation
        entries.append({
            "name": name, "task": card.task, "family": card.architecture.family, "variant": card.variant,
            "params": card.params, "dataset": ev.get("dataset", ""), "clean_acc": ev.get("clean_accuracy"),
            "n": ev.get("n"),
        })
    families = list_families()
    if json_out:
        out_console.print_json(json.dumps({"zoo": entries, "families": families, "variants": list(VARIANTS),
                                           "arch_options": arch_options_json()}))
        return
    for table in zoo_tables(entries, families, list(VARIANTS), zoo_dir()):
        out_console.print(table)
    out_console.print(arch_options_table(arch_options_json()))
