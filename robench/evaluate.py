"""``robench.evaluate``: every model x every threat -> one :class:`ResultRow` each.

This version measures clean accuracy (threat ``none``); per-example records are kept and every
summary number is computed from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from robench import __version__
from robench.data.base import Dataset, stratified_sample
from robench.data.registry import load_dataset
from robench.device import resolve_device
from robench.errors import RobenchError
from robench.loading import LoadedModel, list_zoo, load_model
from robench.results.records import Record, summarize, write_records
from robench.results.schema import ResultRow
from robench.results.stats import wilson_interval

CLEAN = "none"


@dataclass
class EvaluateArgs:
    """Arguments of ``robench evaluate`` (shared by the CLI and the Python API)."""

    models: Sequence[str] = ()
    dataset: str | None = None
    split: str = "test"
    num_examples: int | None = None
    batch_size: int = 256
    device: str = "auto"
    seed: int = 0
    out: Path | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise RobenchError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.num_examples is not None and self.num_examples < 1:
            raise RobenchError(f"-n/--num-examples must be >= 1, got {self.num_examples}")


@dataclass
class ModelResult:
    model: LoadedModel
    dataset: Dataset
    records: dict[str, list[Record]] = field(default_factory=dict)


def check_labels(model: LoadedModel, ds: Dataset) -> None:
    """The dataset's label names must be the model's, in the same order."""
    if len(ds.labels) != len(model.labels):
        raise RobenchError(
            f"model {model.name} has {len(model.labels)} labels but dataset {ds.name} has {len(ds.labels)}; "
            "evaluate it on a dataset with the same label set"
        )
    if list(ds.labels) != list(model.labels):
        diff = [f"{i}: model {a!r} vs data {b!r}" for i, (a, b) in enumerate(zip(model.labels, ds.labels)) if a != b]
        raise RobenchError(f"label names of model {model.name} and dataset {ds.name} differ ({'; '.join(diff[:3])})")
    if model.task != ds.task:
        raise RobenchError(f"model {model.name} is a {model.task} model but dataset {ds.name} is {ds.task}")


def select_examples(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """The whole split, or a seeded stratified sample of ``n`` examples."""
    return ds if n is None or n >= len(ds) else ds.subset(stratified_sample(ds.targets, n, seed))


@torch.inference_mode()
def predict(model: LoadedModel, ds: Dataset, batch_size: int) -> torch.Tensor:
    """Clean predictions for every example, in dataset order."""
    module, device = model.module, model.device
    preds = []
    for _, x, _ in ds.batches(batch_size):
        if not isinstance(x, torch.Tensor):
            x = module.encode(x)
        logits = module(x.to(device))
        if not torch.isfinite(logits).all():
            raise RobenchError(f"model {model.name} produced NaN or inf logits; the checkpoint or its inputs are broken")
        preds.append(logits.argmax(-1).cpu())
    return torch.cat(preds)


def clean_records(model: LoadedModel, ds: Dataset, batch_size: int) -> list[Record]:
    preds = predict(model, ds, batch_size)
    return [Record(id=i, label=int(y), clean_pred=int(p), attacked_pred=int(p)) for i, y, p in zip(ds.ids, ds.targets, preds)]


def make_row(model: LoadedModel, ds: Dataset, threat: str, records: list[Record], unit: str,
             seconds: float, seed: int, device: torch.device) -> ResultRow:
    """Summarise records into the result schema."""
    s = summarize(records)
    lo, hi = wilson_interval(s.robust, s.n)
    return ResultRow(
        model=model.name, checkpoint_sha256=model.sha256, task=model.task, dataset=ds.name, split=ds.split,
        n=s.n, threat=threat, clean_acc=s.clean_acc, attacked_acc=s.attacked_acc, attacked_ci_low=lo,
        attacked_ci_high=hi, attack_success_rate=s.attack_success_rate, mean_perturbation=s.mean_perturbation,
        perturbation_unit=unit, mean_queries=s.mean_queries, seconds=seconds, seed=seed, device=str(device),
        robench_version=__version__,
    )


def evaluate(
    args: EvaluateArgs,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """Evaluate each model (default: the whole zoo) on its dataset; one row per (model, threat)."""
    device = resolve_device(args.device)
    specs = list(args.models) or list_zoo()
    if not specs:
        raise RobenchError("no models given and the zoo is empty; pass a checkpoint path or set ROBENCH_ZOO")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    datasets: dict[tuple[str, str], Dataset] = {}
    rows = []
    for spec in specs:
        model = load_model(spec, device)
        name = args.dataset or model.card.evaluation.get("dataset") or model.card.training.get("dataset")
        if not name:
            raise RobenchError(f"model {model.name} has no default dataset in its card; pass --dataset")
        key = (name, args.split)
        if key not in datasets:
            datasets[key] = load_dataset(name, args.split)
        ds = datasets[key]
        check_labels(model, ds)
        ds = select_examples(ds, args.num_examples, args.seed)
        start = time.perf_counter()
        records = clean_records(model, ds, args.batch_size)
        row = make_row(model, ds, CLEAN, records, "none", time.perf_counter() - start, args.seed, device)
        if args.out is not None:
            write_records(args.out / f"{model.name}__{CLEAN}.jsonl", records)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows
