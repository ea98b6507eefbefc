"""``robench export``: a robench checkpoint as a timm hub-layout folder (``--to timm``) or the folder
``push_to_hub`` uploads (``--to hf``: plus README.md)."""

from __future__ import annotations

import typer

from robench.cli.app import app, out_console
from robench.cli.options import args_options
from robench.engine.args import ExportArgs


@app.command()
@args_options(ExportArgs)
def export(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line."),
    run: dict = None,
) -> None:
    """Write a robench image checkpoint as a timm hub-layout folder (config.json + model.safetensors)."""
    from robench.checkpoint.export import export_checkpoint

    result = export_checkpoint(ExportArgs(**run))
    if not quiet:
        out_console.print(f"{result.path}: {result.architecture} ({', '.join(result.files)}), model.safetensors sha256 "
                          f"{result.sha256[:16]}…; load it with timm:{result.path} or timm.create_model(\"local-dir:{result.path}\")",
                          highlight=False)
