"""robench's command line: a thin Typer layer that parses, calls the library and renders."""

from robench.cli.app import app, main
from robench.cli import doctor_cmd, evaluate_cmd, models_cmd, train_cmd  # noqa: F401  (register commands)

__all__ = ["app", "main"]
