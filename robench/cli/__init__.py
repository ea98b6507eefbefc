"""robench's command line: a thin Typer layer that parses, calls the library and renders."""

from robench.cli.app import app, main
from robench.cli import aggregate_cmd, evaluate_cmd, attack_cmd, curve_cmd, diagnose_cmd, doctor_cmd, export_cmd, leaderboard_cmd, merge_cmd, models_cmd, threats_cmd, train_cmd  # noqa: F401

__all__ = ["app", "main"]
