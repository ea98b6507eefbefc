"""``robench threats``: the threat registry with parameters, defaults, bounds and units."""

from __future__ import annotations

import typer

from robench.cli.app import app, out_console


@app.command()
def threats(json_out: bool = typer.Option(False, "--json", help="Machine output on stdout.")) -> None:
    """List every threat with its parameters, defaults and units, and the suites."""
    import json

    from rich.table import Table

    from robench.threats.registry import threat_classes
    from robench.threats.spec import format_number
    from robench.threats.suite import list_suites

    classes = threat_classes()
    if json_out:
        out_console.print_json(json.dumps({
            "threats": [
                {"name": n, "modality": c.modality, "unit": c.norm, "summary": c.summary,
                 "params": [{"name": p.name, "type": p.kind, "default": p.default, "unit": p.unit,
                             "bounds": p.describe(), "help": p.help} for p in c.params]}
                for n, c in classes.items()
            ],
            "suites": list_suites(),
        }))
        return
    table = Table(title="robench threats", caption="spec: name:key=value,... (fractions like 8/255 allowed); suites: " + ", ".join(list_suites()))
    table.add_column("threat", no_wrap=True)
    table.add_column("modality")
    table.add_column("parameters (default, bounds, unit)")
    table.add_column("what it does")
    for name, cls in classes.items():
        params = "\n".join(
            f"{p.name}={format_number(p.default)} {p.describe()} {p.unit}".rstrip() for p in cls.params
        )
        table.add_row(name, cls.modality, params or "-", cls.summary)
    out_console.print(table)
