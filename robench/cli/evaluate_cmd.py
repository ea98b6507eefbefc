"""``robench evaluate``: leaderboard of every MODEL on its dataset."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import List, Optional

import typer

from robench.cli.app import app, err_console, out_console


def check_export_paths(paths: dict[str, Optional[Path]]) -> None:
    """Fail before any work if an export could not be written."""
    from robench.errors import RobenchError

    for flag, p in paths.items():
        if p is None or str(p) == "-":
            continue
        if p.is_dir():
            raise RobenchError(f"--{flag} {p} is a directory; give a file path")
        if not p.parent.is_dir():
            raise RobenchError(f"--{flag} {p}: directory {p.parent} does not exist; create it first")


@contextlib.contextmanager
def progress_bar(show: bool, total: int, what: str):
    """A Rich progress bar on stderr; yields ``step()`` to advance it (a no-op when hidden)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=not show, transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)


def warn(message: str) -> None:
    """Warnings go to stderr as one line each (never into machine output on stdout)."""
    sys.stderr.write(f"robench: warning: {' '.join(message.split())}\n")


def write_exports(rows, paths: dict[str, Optional[Path]]) -> None:
    from robench.results.schema import EXPORTERS, export

    for fmt, p in paths.items():
        if p is None:
            continue
        if str(p) == "-":
            sys.stdout.write(EXPORTERS[fmt](rows))
        else:
            export(rows, p, fmt)
            err_console.print(f"wrote {fmt} -> {p}")


@app.command()
def evaluate(
    models: List[str] = typer.Argument(None, help="Zoo names or checkpoint paths (default: the whole zoo)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name (default: each model's own, from its card)."),
    split: str = typer.Option("test", "--split", help="Dataset split."),
    num_examples: Optional[int] = typer.Option(None, "-n", "--num-examples", help="Seeded stratified sample size (default: whole split)."),
    batch_size: int = typer.Option(256, "--batch-size"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling (and attacks)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for per-example JSONL records."),
    suite: str = typer.Option("default", "--suite", help="Threat suite: a name in attacks/ (default, paper, clean) or a .toml path."),
    threat: Optional[List[str]] = typer.Option(None, "--threat", help="Ad-hoc threat spec (repeatable); replaces the suite."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Model to compare against: paired difference + exact McNemar p."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Export rows as CSV ('-' for stdout)."),
    json_: Optional[Path] = typer.Option(None, "--json", help="Export rows as JSON ('-' for stdout: machine output)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Export rows as a Markdown table."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: the leaderboard as grouped bars with 95% error bars."),
    query_budget: Optional[int] = typer.Option(None, "--query-budget", help="Max model queries per example for text threats that take a budget."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Text column of a table dataset."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Label column of a table dataset."),
    image_column: Optional[str] = typer.Option(None, "--image-column", help="Image column of a Hugging Face dataset."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Card (.json) or zoo name giving the architecture of a plain state dict."),
    model_arg: Optional[List[str]] = typer.Option(None, "--model-arg", help="key=value for timm.create_model (repeatable)."),
    mean: Optional[List[float]] = typer.Option(None, "--mean", help="Per-channel mean overriding a timm model's contract (repeatable)."),
    std: Optional[List[float]] = typer.Option(None, "--std", help="Per-channel std overriding a timm model's contract (repeatable)."),
    expect_accuracy: Optional[float] = typer.Option(None, "--expect-accuracy", help="Clean accuracy the preprocessing probe should expect."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
) -> None:
    """Evaluate checkpoints under a threat suite and print a leaderboard (accuracy with 95% Wilson intervals)."""
    from robench.evaluate import EvaluateArgs, evaluate as run_evaluate
    from robench.models.timm_loader import parse_model_args
    from robench.render import leaderboard_tables

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths({**exports, "plot": plot})
    args = EvaluateArgs(
        models=models or [], dataset=dataset, split=split, num_examples=num_examples,
        batch_size=batch_size, device=device, seed=seed, out=out, suite=suite, threats=threat or [],
        baseline=baseline, query_budget=query_budget, arch=arch, model_args=parse_model_args(model_arg or []), mean=mean or None, std=std or None,
        expect_accuracy=expect_accuracy, text_column=text_column, label_column=label_column, image_column=image_column, 
    )
    machine = any(str(p) == "-" for p in exports.values() if p is not None)
    show = not quiet and not machine

    def note(row) -> None:
        if show:
            err_console.print(f"  {row.model} · {row.threat}: {100 * row.attacked_acc:.1f}% (n={row.n}, {row.seconds:.2f}s)", highlight=False)

    with progress_bar(show, total=0, what="corruptions") as step:
        rows = run_evaluate(args, on_row=note, on_progress=lambda desc, k, n: step(), on_warning=warn)
    if show:
        for table in leaderboard_tables(rows):
            out_console.print(table)
    write_exports(rows, exports)
    if plot is not None:
        from robench.plots import close, plot_leaderboard

        close(plot_leaderboard(rows, plot))
        err_console.print(f"wrote plot -> {plot}")
