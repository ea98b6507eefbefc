"""``robench train``: train one variant on an embedded task -> checkpoint + card."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.options import DeferredOptions, deferred_args_options


@app.command(cls=DeferredOptions)
@deferred_args_options("robench.training.classifier", "TrainArgs")  # it imports torch: not at `robench --help`
def train(
    out: Path = typer.Option(..., "--out", help="Output checkpoint path (NAME.safetensors; NAME.json is written beside)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, no summary line."),
    run: dict = None,
) -> None:
    """Train a model deterministically and write NAME.safetensors + NAME.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robench.device import resolve_device
    from robench.errors import RobenchError
    from robench.training.classifier import TrainArgs, train as run_train

    dev = resolve_device(run["device"])
    if not out.parent.is_dir():
        raise RobenchError(f"--out {out}: directory {out.parent} does not exist; create it first")
    args = TrainArgs(**{**run, "device": str(dev)})
    task, variant = args.task, args.variant
    command = shlex.join(["robench", *sys.argv[1:]])
    if task == "lm":  # bad files fail before the progress bar shows
        from robench.lm.train import read_files

        args.resolved()
        read_files(args)
    epochs = args.resolved()["epochs"]
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f} · train acc {task.fields[acc]:.1%}"), TimeElapsedColumn(),
        console=err_console, disable=quiet,
    )
    bar = progress.add_task(f"{task}/{variant}", total=epochs, loss=float("nan"), acc=0.0)

    def on_epoch(s) -> None:
        progress.update(bar, completed=s.epoch, loss=s.loss, acc=s.train_acc)

    started = []

    def on_start() -> None:  # every input is checked by now: train calls it before the first epoch
        started.append(True)
        progress.start()

    try:
        result = run_train(args, out, command=command, on_epoch=on_epoch, on_start=on_start)
    finally:
        if started:  # stopping a bar that never started would still print an empty line
            progress.stop()
    if not quiet and args.task == "lm":
        ev = result.card.evaluation
        out_console.print(
            f"{result.path}: test perplexity {result.test_metric:.2f} on {ev['dataset']} (n={ev['n']} tokens), "
            f"{result.card.params:,} params, sha256 {result.sha256[:16]}…, {result.seconds:.1f}s"
        )
    elif not quiet:
        out_console.print(
            f"{result.path}: test accuracy {100 * result.test_metric:.2f}% (n={result.card.evaluation['n']}), "
            f"{result.card.params:,} params, sha256 {result.sha256[:16]}…, {result.seconds:.1f}s"
        )
        out_console.print(f"{len(result.card.labels)} classes: {', '.join(result.card.labels)}", highlight=False)
