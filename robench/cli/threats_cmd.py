"""``robench threats``: the threat registry with parameters, defaults, bounds and units."""

from __future__ import annotations

import typer

from robench.cli.app import app, out_console


@app.command()
def threats(json_out: bool = typer.Option(False, "--json", help="Machine output on stdout: threats, parameters and each suite's threats.")) -> None:
    """List every threat with its parameters, defaults and units, and the suites with their threats."""
    import json

    from robench.threats.listing import threats_json, threats_text

    if json_out:
        out_console.print_json(json.dumps(threats_json()))
        return
    # wrapped here at the console's width (the terminal's, or COLUMNS when piped); Rich must not re-wrap it
    out_console.print(threats_text(out_console.width), end="", markup=False, highlight=False, soft_wrap=True)
