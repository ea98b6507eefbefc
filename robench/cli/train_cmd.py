"""``robench train``: train one variant on an embedded task -> checkpoint + card."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from robench.cli.app import app, err_console, out_console


@app.command()
def train(
    task: str = typer.Option(..., "--task", help="digits, wordnet-topics, a text file (.tsv/.csv table or .json/.jsonl/.parquet with a text and a label column), an MNIST idx file or image folder (slices: FILE[:8000]), or lm (a causal language model on --data)."),
    variant: str = typer.Option(..., "--variant", help="sa, bsa, grc or bsa-grc."),
    out: Path = typer.Option(..., "--out", help="Output checkpoint path (NAME.safetensors; NAME.json is written beside)."),
    # defaults are per task (robench/train.py TASKS and IMAGE_SOURCE_DEFAULTS, robench/lm_train.py DEFAULTS);
    # tests/test_cli.py checks that these help texts state them
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation, data order and sampling."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default per task: digits 40, wordnet-topics and text tables 20, image sources 10, lm 1)."),
    embed_dim: Optional[int] = typer.Option(None, "--embed-dim", help="Model width (default per task: digits 64, wordnet-topics and text tables 48, image sources 64, lm 64)."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Transformer blocks (default per task: digits 4, wordnet-topics and text tables 2, image sources 4, lm 2)."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention heads, must divide --embed-dim (default per task: digits 4, wordnet-topics and text tables 4, image sources 4, lm 4)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="AdamW peak learning rate (default per task: digits 0.002, wordnet-topics and text tables 0.002, image sources 0.002, lm 0.003)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training batch size (default per task: digits 64, wordnet-topics and text tables 64, image sources 64, lm 32)."),
    device: str = typer.Option("cpu", "--device", help="cpu (bit-reproducible), cuda or auto."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: $ROBENCH_THREADS, else torch's: one per core, idle OpenMP threads sleeping); CPU training is bit-reproducible per thread count, recorded in the card."),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="Held-out .tsv/.csv when --task is a file; the test token file with --task lm."),
    train_examples: Optional[int] = typer.Option(None, "--train-examples", help="Train on a seeded stratified sample of this size."),
    data: Optional[str] = typer.Option(None, "--data", help="--task lm: the training token file (one paragraph per line, e.g. wiki.valid.tokens)."),
    train_tokens: Optional[int] = typer.Option(None, "--train-tokens", help="--task lm: train on the first N tokens of --data only."),
    patch_size: Optional[int] = typer.Option(None, "--patch-size", help="Image tasks: patch side in pixels (default: a 4 x 4 grid)."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Text files: the text column (default: sentence, text, content or review)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Text files: the label column (default: label)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Text files: label names, one per line, fixing their order (default: 0..K-1 for integer labels, sorted names for strings)."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="Text tasks and lm: vocabulary cap, [PAD] and [UNK] included (default: 2000; lm 5000)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Text tasks and lm: tokens per text, longer ones truncated (default: 32; lm context 64)."),
    img_size: Optional[int] = typer.Option(None, "--img-size", help="Image files: resize and centre-crop every image to N x N (default: the first training image's size, if square)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Image files: decoding processes (default: half the CPU cores, at most 8; 0 = in process)."),
    augment: bool = typer.Option(False, "--augment", help="Image files: timm's train augmentation (RandomResizedCrop, flip, colour jitter); off by default."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, no summary line."),
) -> None:
    """Train a model deterministically and write NAME.safetensors + NAME.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robench.device import resolve_device
    from robench.errors import RobenchError
    from robench.training.classifier import TrainArgs, train as run_train

    dev = resolve_device(device)
    if not out.parent.is_dir():
        raise RobenchError(f"--out {out}: directory {out.parent} does not exist; create it first")
    args = TrainArgs(task=task, variant=variant, seed=seed, epochs=epochs, embed_dim=embed_dim, depth=depth,
                     num_heads=heads, lr=lr, batch_size=batch_size, device=str(dev), eval_data=eval_data,
                     train_examples=train_examples, data=data, train_tokens=train_tokens, patch_size=patch_size,
                     img_size=img_size, workers=workers, augment=augment, threads=threads,
                     text_column=text_column, label_column=label_column, labels_file=labels, vocab_size=vocab_size,
                     max_length=max_length)
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
