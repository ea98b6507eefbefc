"""``robench diagnose``: token uniformity and SNR per layer, attention sensitivity vs N -> tables, CSV, PNG."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from robench.cli.app import app, err_console, out_console


def _cell(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if value == value and abs(value) != float("inf") else str(value)


@app.command()
def diagnose(
    models: List[str] = typer.Argument(..., help="Zoo names or robench checkpoint paths."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name or source (default: the model card's)."),
    split: str = typer.Option("test", "--split", help="Dataset split."),
    num_examples: int = typer.Option(64, "-n", "--num-examples", help="Seeded stratified sample size."),
    batch_size: int = typer.Option(64, "--batch-size", help="Examples per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: $ROBENCH_THREADS, else torch's: one per core, idle OpenMP threads sleeping)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the sample, the noise and the random tokens."),
    noise: Optional[float] = typer.Option(None, "--noise", help="SNR noise: pixel sigma (images) or token replacement rate (text); default 0.1."),
    lengths: str = typer.Option("64,128,256,512,1024,2048", "--lengths", help="Sequence lengths N for attention sensitivity."),
    delta: float = typer.Option(1e-3, "--delta", help="Relative size ||dx||/||x|| of the attention-sensitivity perturbation."),
    draws: int = typer.Option(4, "--draws", help="Random inputs per length (averaged)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Long format: model, diagnostic, layer, n_tokens, value, unit ('-' for stdout)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG with three panels."),
) -> None:
    """Mechanism diagnostics: token uniformity and SNR per layer, first-layer attention sensitivity vs N."""
    from rich.table import Table

    from robench.cli.evaluate_cmd import check_export_paths, write_text_export
    from robench.report.plots import close, plot_diagnostics
    from robench.studies.diagnose.run import SENSITIVITY, SNR, UNIFORMITY, DiagnoseArgs, diagnose as run_diagnose

    check_export_paths({"csv": csv, "plot": plot})
    args = DiagnoseArgs(models=models, dataset=dataset, split=split, num_examples=num_examples, batch_size=batch_size, threads=threads,
                        device=device, seed=seed, noise=noise, lengths=lengths, delta=delta, draws=draws)
    result = run_diagnose(args)
    n = "/".join(str(v) for v in dict.fromkeys(result.examples.values()))
    noises = "; ".join(dict.fromkeys(result.noise.values()))
    specs = [
        (UNIFORMITY, "token uniformity: mean pairwise cosine of all tokens (CLS included) per layer; 0 = embedding",
         f"n={n} examples, seed {seed}; higher = more uniform (1 = all tokens parallel)", "L", 3),
        (SNR, "SNR per layer (dB): 10 log10(sum ||H(x)||^2 / sum ||H(x~) - H(x)||^2)",
         f"noise: {noises}; n={n}, seed {seed}; higher is better", "L", 1),
        (SENSITIVITY, "first attention layer: relative sensitivity (||dA||/||A||) / (||dx||/||x||) vs N",
         f"random unit-variance tokens, delta={delta:g}, {draws} draws, seed {seed}", "N=", 3),
    ]
    for diag, title, caption, prefix, digits in specs if str(csv) != "-" else []:  # stdout carries the CSV then
        keys = list(dict.fromkeys(k for m in result.models for k, _ in result.series(m, diag)))
        table = Table()  # title and caption as plain lines: a narrow table would wrap them
        table.add_column("model", no_wrap=True)
        for k in keys:
            table.add_column(f"{prefix}{k}", justify="right")
        for m in result.models:
            cells = dict(result.series(m, diag))
            table.add_row(m, *(_cell(cells[k], digits) if k in cells else "-" for k in keys))
        out_console.print(f"[bold]{title}[/bold]", highlight=False)
        out_console.print(table)
        out_console.print(caption, highlight=False)
    if csv is not None:
        write_text_export(csv, result.to_csv(), f"{len(result.rows)} rows")
    if plot is not None:
        close(plot_diagnostics(result, plot))
        err_console.print(f"wrote plot -> {plot}")
