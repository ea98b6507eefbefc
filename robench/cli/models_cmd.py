"""``robench models``: the zoo and the registered architectures."""

from __future__ import annotations

import typer

from robench.cli.app import app, out_console


@app.command()
def models(
    json_out: bool = typer.Option(False, "--json", help="Machine output on stdout."),
) -> None:
    """List the model zoo (name, task, variant, params, clean accuracy) and the architectures."""
    import json

    from rich.table import Table

    from robench.checkpoint.card import Card
    from robench.models.loading import list_zoo, zoo_dir
    from robench.models.config import VARIANTS
    from robench.models.registry import list_families

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
        out_console.print_json(json.dumps({"zoo": entries, "families": families, "variants": list(VARIANTS)}))
        return
    table = Table(title=f"robench zoo ({zoo_dir()})", caption="clean accuracy on the card's test split, measured at training time")
    for col, just in [("name", "left"), ("task", "left"), ("variant", "left"), ("params", "right"),
                      ("dataset", "left"), ("clean %", "right"), ("n", "right")]:
        table.add_column(col, justify=just)
    for e in entries:
        acc = "-" if e["clean_acc"] is None else f"{100 * e['clean_acc']:.2f}"
        table.add_row(e["name"], e["task"], e["variant"], f"{e['params']:,}", e["dataset"], acc, str(e["n"] or "-"))
    out_console.print(table)
    arch = Table(title="registered architectures")
    arch.add_column("family")
    arch.add_column("variants")
    arch.add_column("timm names")
    for fam in families:
        timm_names = ", ".join(f"robench_vit_{v.replace('-', '_')}" for v in VARIANTS) if fam == "vit" else "-"
        arch.add_row(fam, ", ".join(VARIANTS), timm_names)
    out_console.print(arch)
