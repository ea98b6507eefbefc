"""Options shared by every command that evaluates (evaluate, attack, curve), declared once.

``@run_options`` appends them to a command's signature (Typer reads signatures) and hands the
command a ready ``run`` dict of :class:`~robench.engine.evaluate.RunArgs` keyword arguments.
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional

import typer

_P = inspect.Parameter

# The row exports every command that produces result rows takes (evaluate, attack, merge, leaderboard).
CsvExport = Annotated[Optional[Path], typer.Option("--csv", help="Export rows as CSV ('-' for stdout).")]
JsonExport = Annotated[Optional[Path], typer.Option("--json", help="Export rows as JSON ('-' for stdout: machine output).")]
MarkdownExport = Annotated[Optional[Path], typer.Option("--markdown", help="Export rows as a Markdown table.")]
RUN_OPTIONS: list[tuple[str, Any, Any]] = [
    ("dataset", Annotated[Optional[str], typer.Option("--dataset", help="Dataset name or source (default: the model card's).")], None),
    ("split", Annotated[str, typer.Option("--split", help="Dataset split.")], "test"),
    ("num_examples", Annotated[Optional[int], typer.Option("-n", "--num-examples", help="Seeded stratified sample size (default: whole split).")], None),
    ("batch_size", Annotated[int, typer.Option("--batch-size", help="Examples per forward pass and per attack batch (batches are seeded by position: results do not depend on it for deterministic attacks; a larger one is faster on a GPU and needs more memory).")], 256),
    ("device", Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")], "auto"),
    ("amp", Annotated[str, typer.Option("--amp", help="Autocast for attack forward passes: auto (bf16 on CUDA, off on CPU), off, bf16, fp16; recorded predictions are fp32.")], "auto"),
    ("seed", Annotated[int, typer.Option("--seed", help="Seed for sampling and attacks.")], 0),
    ("out", Annotated[Optional[Path], typer.Option("--out", help="Directory for per-example JSONL records.")], None),
    ("query_budget", Annotated[Optional[int], typer.Option("--query-budget", help="Max model queries per example for text threats that take a budget.")], None),
    ("text_column", Annotated[Optional[str], typer.Option("--text-column", help="Text column of a table dataset.")], None),
    ("label_column", Annotated[Optional[str], typer.Option("--label-column", help="Label column of a table dataset.")], None),
    ("image_column", Annotated[Optional[str], typer.Option("--image-column", help="Image column of a Hugging Face dataset.")], None),
    ("labels_file", Annotated[Optional[str], typer.Option("--labels", help="Label names of a table/JSON dataset, one per line, fixing their order (default: 0..K-1 for integer labels, sorted names for strings).")], None),
    ("arch", Annotated[Optional[str], typer.Option("--arch", help="Card (.json) or zoo name giving the architecture of a plain state dict.")], None),
    ("model_arg", Annotated[Optional[List[str]], typer.Option("--model-arg", help="key=value for timm.create_model (repeatable).")], None),
    ("mean", Annotated[Optional[List[float]], typer.Option("--mean", help="Per-channel mean overriding a timm model's contract (repeatable).")], None),
    ("std", Annotated[Optional[List[float]], typer.Option("--std", help="Per-channel std overriding a timm model's contract (repeatable).")], None),
    ("expect_accuracy", Annotated[Optional[float], typer.Option("--expect-accuracy", help="Clean accuracy the preprocessing probe should expect.")], None),
    ("shard", Annotated[Optional[str], typer.Option("--shard", help="i/n: evaluate shard i of n (0-based) into --out DIR/shard-i-of-n; combine with `robench merge DIR`.")], None),
    ("workers", Annotated[Optional[int], typer.Option("--workers", help="Processes decoding image files (folders, image tables, Arrow datasets); default: half the CPU cores, at most 8; 0 decodes in the main process.")], None),
    ("img_size", Annotated[Optional[int], typer.Option("--img-size", help="Input size overriding the model's (timm data config or card); image files are resized and cropped to it.")], None),
    ("crop_pct", Annotated[Optional[float], typer.Option("--crop-pct", help="Centre-crop fraction overriding the model's: resize to size/crop_pct, crop size (timm's eval transform).")], None),
    ("interpolation", Annotated[Optional[str], typer.Option("--interpolation", help="Resize interpolation overriding the model's: bilinear, bicubic, nearest, lanczos, box, hamming.")], None),
    ("threads", Annotated[Optional[int], typer.Option("--threads", help="CPU threads for the model and attacks (default: $ROBENCH_THREADS, else torch's: one per core, idle OpenMP threads sleeping; shown in the run header, recorded in --out's run.json).")], None),
    ("skip_unreadable", Annotated[bool, typer.Option("--skip-unreadable", help="Leave images that cannot be decoded out of the run (listed in --out DIR/run.json and warned about) instead of stopping.")], False),
]


def _run_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    from robench.models.timm_loader import parse_model_args

    values = dict(values)
    values["model_args"] = parse_model_args(values.pop("model_arg") or [])
    values["mean"] = values["mean"] or None
    values["std"] = values["std"] or None
    return values


def run_options(fn: Callable) -> Callable:
    """Give ``fn`` the shared options; it receives them as ``run`` (RunArgs keyword arguments)."""
    sig = inspect.signature(fn)
    # The command's own annotations resolved to objects (they are strings under `from __future__
    # import annotations`), keeping Annotated metadata such as the shared CsvExport option.
    hints = typing.get_type_hints(fn, include_extras=True)
    own = [p.replace(annotation=hints.get(name, p.annotation)) for name, p in sig.parameters.items() if name != "run"]
    extra = [_P(name, _P.KEYWORD_ONLY, default=default, annotation=ann) for name, ann, default in RUN_OPTIONS]
    names = [name for name, _, _ in RUN_OPTIONS]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = {k: kwargs.pop(k) for k in names if k in kwargs}
        return fn(*args, **kwargs, run=_run_kwargs(run))

    wrapper.__signature__ = sig.replace(parameters=own + extra)
    wrapper.__annotations__ = {**{k: v for k, v in hints.items() if k != "run"},
                               **{name: ann for name, ann, _ in RUN_OPTIONS}}
    return wrapper
