"""``robench.evaluate``: every model x every threat -> one :class:`ResultRow` each.

One clean pass per model (threat ``none``), then each threat of the suite (or the ``--threat``
list) for the model's modality, attacking only the examples still correctly classified. Every
summary number is computed from the per-example records, which ``--out DIR`` writes as JSONL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from robench import __version__
from robench.checkpoint.io import card_path_for
from robench.data.base import LM as LM_TASK, Dataset, stratified_sample
from robench.data.labels import align_labels
from robench.data.registry import check_split, load_dataset
from robench.data.card_paths import card_columns, default_dataset
from robench.device import AMP_CHOICES, amp_name, resolve_device
from robench.distributed import Shard, gather_max, gather_records, init_from_env, parse_shard
from robench.errors import RobenchError
from robench.loading import LoadedModel, list_zoo, load_model
from robench.probe import probe_preprocessing
from robench.results.records import Record, summarize
from robench.results.schema import ResultRow
from robench.results.stats import mcnemar_exact, wilson_interval
from robench.results.store import RecordStore
from robench.runner import attack_records, check_modality
from robench.sanity import Flag, attach, model_flags, row_flags
from robench.threats.base import Threat
from robench.threats.registry import build_threat
from robench.threats.suite import load_suite

CLEAN = "none"


@dataclass(kw_only=True)
class RunArgs:
    """Options every evaluating command shares (DESIGN.md section 2, common options)."""

    dataset: str | None = None
    split: str = "test"
    num_examples: int | None = None
    batch_size: int = 256
    device: str = "auto"
    amp: str = "auto"  # autocast of attack forward passes: auto (bf16 on CUDA, off on CPU), off, bf16, fp16
    seed: int = 0
    out: Path | None = None
    query_budget: int | None = None  # overrides the query_budget of every threat that has one
    arch: str | None = None  # card (or zoo name) for weights without one
    model_args: dict | None = None  # timm.create_model kwargs for timm: models
    mean: list[float] | None = None  # override the preprocessing contract of timm: models
    std: list[float] | None = None
    expect_accuracy: float | None = None  # for the preprocessing probe (default: the card's figure)
    text_column: str | None = None  # column names of table datasets (default: detected)
    label_column: str | None = None
    image_column: str | None = None
    labels_file: str | None = None  # --labels FILE: label names, one per line, fixing a table's label order
    shard: str | None = None  # "i/n": evaluate shard i of n, records under --out DIR/shard-i-of-n for `robench merge`

    @property
    def columns(self) -> dict[str, str | None]:
        return {"text": self.text_column, "label": self.label_column, "image": self.image_column,
                "labels": None if self.labels_file is None else str(self.labels_file)}

    def __post_init__(self) -> None:
        if self.amp not in AMP_CHOICES:
            raise RobenchError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        if self.query_budget is not None and self.query_budget < 1:
            raise RobenchError(f"--query-budget must be >= 1, got {self.query_budget}")
        if self.batch_size < 1:
            raise RobenchError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.num_examples is not None and self.num_examples < 1:
            raise RobenchError(f"-n/--num-examples must be >= 1, got {self.num_examples}")
        if self.shard is not None:
            parse_shard(self.shard)


@dataclass(kw_only=True)
class EvaluateArgs(RunArgs):
    """Arguments of ``robench evaluate`` (shared by the CLI and the Python API)."""

    models: Sequence[str | LoadedModel] = ()  # LoadedModel: from Python only
    suite: str = "default"
    threats: Sequence[str] = ()
    baseline: str | None = None


def check_labels(model: LoadedModel, ds: Dataset) -> Dataset:
    """``ds`` in the model's label space: targets mapped by label name (integer labels by
    position); the data may lack some of the model's classes, not have classes the model lacks."""
    if model.task != ds.task:
        raise RobenchError(f"model {model.name} is a {model.task} model but dataset {ds.name} is {ds.task}")
    return align_labels(ds, model.labels, f"model {model.name}")


def select_examples(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """The whole split, or a seeded stratified sample of ``n`` examples."""
    return ds if n is None or n >= len(ds) else ds.subset(stratified_sample(ds.targets, n, seed))


def sample_note(ds: Dataset, n: int | None) -> str | None:
    """The note for ``-n`` above the split's size (every example is used; the rows say n = the size)."""
    if n is None or n <= len(ds):
        return None
    where = ds.name if ds.split in ds.name else f"{ds.name} ({ds.split})"  # a file's split is its name
    return f"note: -n {n} is more than the {len(ds)} examples of {where}; using all {len(ds)}"


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


def modality_of(model: LoadedModel) -> str:
    return "image" if model.task == "image-classification" else "text"


def apply_budget(threat: Threat, args: RunArgs) -> Threat:
    return threat if args.query_budget is None else threat.with_values(query_budget=args.query_budget)


def resolve_threats(args: EvaluateArgs) -> dict[str, list[Threat]]:
    """Threats per modality: the ad-hoc ``--threat`` list if given, else the suite's."""
    if args.threats:
        out: dict[str, list[Threat]] = {"image": [], "text": []}
        for spec in args.threats:
            t = apply_budget(build_threat(spec), args)
            if t not in out[t.modality]:
                out[t.modality].append(t)
        return out
    suite = load_suite(args.suite)
    return {m: [apply_budget(t, args) for t in suite.for_modality(m)] for m in ("image", "text")}


def summary_fields(records: list[Record]) -> dict:
    """The summary columns of a row, computed from its records."""
    s = summarize(records)
    lo, hi = wilson_interval(s.robust, s.n)
    return dict(n=s.n, clean_acc=s.clean_acc, attacked_acc=s.attacked_acc, attacked_ci_low=lo, attacked_ci_high=hi,
                attack_success_rate=s.attack_success_rate, mean_perturbation=s.mean_perturbation,
                mean_queries=s.mean_queries)


def make_row(model: LoadedModel, ds: Dataset, threat: str, records: list[Record], unit: str,
             seconds: float, seed: int, device: torch.device) -> ResultRow:
    """Summarise records into the result schema."""
    return ResultRow(
        model=model.name, checkpoint_sha256=model.sha256, task=model.task, dataset=ds.name, split=ds.split,
        threat=threat, perturbation_unit=unit, seconds=seconds, seed=seed, device=str(device),
        robench_version=__version__, **summary_fields(records),
    )


def set_pooled_n(row: ResultRow, n: int) -> None:
    """A pooled row (``corruption:name=all``) is about ``n`` examples, not its ``n x parts`` records."""
    row.n = n
    row.attacked_ci_low, row.attacked_ci_high = (round(v, 6) for v in wilson_interval(round(row.attacked_acc * n), n))


def relative_mce(results: dict, model: str, baseline: str, parts: list[Threat]) -> float | None:
    """Mean corruption error relative to the baseline (Hendrycks & Dietterich 2019, with the
    baseline in AlexNet's place): mean over corruptions of sum_s err(model) / sum_s err(baseline)."""
    errs: dict[str, list[float]] = {}
    for part in parts:
        mine = summarize(results[(model, part.spec)]).attacked_acc
        base = summarize(results[(baseline, part.spec)]).attacked_acc
        e = errs.setdefault(part.values["name"], [0.0, 0.0])
        e[0] += 1 - mine
        e[1] += 1 - base
    if any(b == 0 for _, b in errs.values()):
        return None  # the baseline never errs on some corruption: relative error undefined
    return round(sum(m / b for m, b in errs.values()) / len(errs), 6)


def add_baseline(rows: list[ResultRow], results: dict[tuple[str, str], list[Record]], baseline: str) -> None:
    """Paired difference to the baseline model and an exact McNemar p-value, per (model, threat),
    computed on the same examples (same dataset, split, sample)."""
    base_rows = {(r.dataset, r.split, r.threat): r for r in rows if r.model == baseline}
    if not base_rows:
        raise RobenchError(f"--baseline {baseline!r} is not one of the evaluated models")
    for r in rows:
        b = base_rows.get((r.dataset, r.split, r.threat))
        if b is None or r.model == baseline:
            continue
        mine, theirs = results[(r.model, r.threat)], results[(baseline, r.threat)]
        if [x.id for x in mine] != [x.id for x in theirs]:  # pooled rows compare example-by-example too
            raise RobenchError(f"cannot pair {r.model} with baseline {baseline}: they were evaluated on different examples")
        only_base = sum(t.robust and not m.robust for m, t in zip(mine, theirs))
        only_mine = sum(m.robust and not t.robust for m, t in zip(mine, theirs))
        r.baseline = baseline
        r.delta_vs_baseline = round((only_mine - only_base) / len(mine), 6)  # = attacked_acc - baseline's
        parts = build_threat(r.threat).expand() if r.threat != CLEAN else []
        if len(parts) > 1:
            # pooled rows: the 75 outcomes of one image are not independent pairs, so no McNemar test
            r.mce = relative_mce(results, r.model, baseline, parts)
        else:
            r.mcnemar_p = mcnemar_exact(only_mine, only_base)


def load_spec(spec: str, args: RunArgs, device: torch.device) -> LoadedModel:
    """Load one MODEL argument with the run's options (timm models are sized by --dataset's labels)."""
    labels = None
    if str(spec).startswith("timm:"):
        if not args.dataset:
            raise RobenchError(f"{spec}: a timm model needs --dataset (its labels size the classifier head)")
        check_split(args.dataset, args.split)
        labels = load_dataset(args.dataset, args.split, args.columns).labels
    return load_model(spec, device, arch=args.arch, labels=labels, model_args=args.model_args, mean=args.mean, std=args.std)


def card_path(model: LoadedModel) -> Path | None:
    """The card file beside a checkpoint (card-relative dataset paths start there)."""
    return None if model.path is None else card_path_for(Path(model.path))


def dataset_of(model: LoadedModel, dataset: str | None) -> tuple[str, str]:
    """``(name, source)`` of the data ``model`` runs on: ``--dataset`` if given, else its card's
    (named as recorded, read from where the card's paths find it from any working directory)."""
    if dataset:
        return dataset, dataset
    found = default_dataset(model.card, card_path(model))
    if found is None:
        raise RobenchError(f"model {model.name} has no default dataset in its card; pass --dataset")
    return found


def check_inputs(model: LoadedModel, ds: Dataset) -> None:
    """Image datasets must have the shape the model's preprocessing contract expects."""
    pre = model.card.preprocessing
    if pre.get("kind") == "image" and isinstance(ds.inputs, torch.Tensor):
        want = (int(pre["channels"]), *map(int, pre["size"]))
        got = tuple(ds.inputs.shape[1:])
        if got != want:
            raise RobenchError(
                f"dataset {ds.name} has images of shape {got} (C, H, W) but model {model.name} expects {want}; "
                "use a dataset of that size or a model built for it"
            )


@dataclass
class Job:
    """One model with its (sampled) evaluation data, checked before any work starts."""

    model: LoadedModel
    ds: Dataset
    expected_accuracy: float | None


def prepare(args: RunArgs, models: list[LoadedModel], datasets: dict[tuple[str, str], Dataset] | None = None,
            on_note: Callable[[str], None] | None = None) -> list[Job]:
    """Load and check each model's dataset (fail fast on any bad input), sample the examples."""
    datasets = {} if datasets is None else datasets
    jobs, noted = [], set()
    for model in models:
        if model.module.training:
            raise RobenchError(f"model {model.name} is in training mode (dropout or batch-norm statistics would change "
                               "under attack); call .eval() on it first")
        name, source = dataset_of(model, args.dataset)
        check_split(source, args.split)
        key = (source, args.split)
        if key not in datasets:
            columns = args.columns if args.dataset else card_columns(model.card, args.columns)
            datasets[key] = load_dataset(source, args.split, columns)
        ds = datasets[key] if name == source else replace(datasets[key], name=name)  # rows keep the card's name
        ds = check_labels(model, ds)
        check_inputs(model, ds)
        note = sample_note(ds, args.num_examples)
        if note and on_note and key not in noted:
            noted.add(key)
            on_note(note)
        ds = select_examples(ds, args.num_examples, args.seed)
        expected = args.expect_accuracy
        if expected is None and model.card.evaluation.get("dataset") == ds.name:
            expected = model.card.evaluation.get("clean_accuracy")
        jobs.append(Job(model, ds, expected))
    return jobs


def run_config(command: str, args: RunArgs, jobs: list[Job], threats: list[str], device: torch.device,
               shard: Shard | None = None) -> dict:
    """Everything that changes the records of a run: what ``--out`` resumes (and merges) must match it."""
    return {
        "shard": [shard.index, shard.count] if shard else None,
        "command": command,
        "models": [[j.model.name, j.model.sha256] for j in jobs],
        "data": [[j.ds.name, j.ds.split, j.ds.sha256, len(j.ds)] for j in jobs],
        "num_examples": args.num_examples, "seed": args.seed, "batch_size": args.batch_size,
        "query_budget": args.query_budget, "threats": threats, "device": device.type, "amp": amp_name(args.amp, device), "robench_version": __version__,
    }


def resolve_shard(args: RunArgs, device: torch.device) -> tuple[Shard | None, torch.device]:
    """This process's shard: a torchrun rank, ``--shard i/n``, or None (the whole run)."""
    shard, device = init_from_env(device)
    if shard is not None and args.shard:
        raise RobenchError("--shard and torchrun both split the run; use one of them")
    if args.shard:
        shard = parse_shard(args.shard)
        if args.out is None:
            raise RobenchError("--shard needs --out DIR: `robench merge DIR` combines the shards' records from there")
    return shard, device


def shard_out(args: RunArgs, shard: Shard | None) -> Path | None:
    return args.out / shard.name if shard is not None and args.out is not None else args.out


def owned_clean(clean: list[Record], shard: Shard | None) -> list[Record]:
    """The clean records this shard keeps (all of them without sharding)."""
    return clean if shard is None else [r for p, r in enumerate(clean) if shard.owns_position(p)]


def complete(records: list[Record], ds: Dataset, shard: Shard | None) -> list[Record]:
    """Under torchrun, every rank's records of one (model, threat) in dataset order; else as given."""
    if shard is None or not shard.distributed:
        return records
    return gather_records(records, {i: p for p, i in enumerate(ds.ids)})


def evaluate(
    args: EvaluateArgs,
    on_row: Callable[[ResultRow], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[ResultRow]:
    """Evaluate each model (default: the whole zoo) on its dataset under each threat of the suite.

    ``args.models`` holds MODEL specs (zoo names, paths, ``timm:``/``hf:``) or, from Python, ready
    :class:`LoadedModel` objects. Returns one row per (model, threat), the clean row
    (``threat = none``) first for each model, each with the sanity battery's flags. With ``--out``,
    records are journaled and a killed run resumes where it stopped.
    """
    device = resolve_device(args.device)
    shard, device = resolve_shard(args, device)
    specs = list(args.models) or list_zoo()
    if not specs:
        raise RobenchError("no models given and the zoo is empty; pass a checkpoint path or set ROBENCH_ZOO")
    if args.baseline is not None and args.baseline not in [getattr(s, "name", s) for s in specs]:
        specs.append(args.baseline)
    threats = resolve_threats(args)
    models = [s if isinstance(s, LoadedModel) else load_spec(s, args, device) for s in specs]  # fail fast on any bad model
    if any(m.task == LM_TASK for m in models):  # language models: perplexity rows (robench.lm_eval)
        if not all(m.task == LM_TASK for m in models):
            raise RobenchError("language models and classifiers cannot be evaluated in one run; evaluate them separately")
        from robench.lm_eval import evaluate_lm

        base = None if args.baseline is None else models[[getattr(s, "name", s) for s in specs].index(args.baseline)].name
        return evaluate_lm(args, models, threats, device, on_row=on_row, on_note=on_note, baseline=base)
    if args.threats:
        modalities = {modality_of(m) for m in models}
        for t in [t for ts in threats.values() for t in ts]:
            if t.modality not in modalities:
                raise RobenchError(f"threat {t.name!r} is a {t.modality} threat but no evaluated model is a {t.modality} model")
    jobs = prepare(args, models, on_note=on_note)
    all_specs = [t.spec for m in ("image", "text") for t in threats[m]]
    store = RecordStore(shard_out(args, shard), run_config("evaluate", args, jobs, all_specs, device, shard))
    partial = shard is not None and not shard.distributed  # rows of this process cover only its shard
    rows: list[ResultRow] = []
    results: dict[tuple[str, str], list[Record]] = {}
    model_checks: dict[str, list[Flag]] = {}
    for job in jobs:
        model, ds = job.model, job.ds
        warning = probe_preprocessing(model, ds, job.expected_accuracy, args.seed)
        if warning and on_warning:
            on_warning(warning)
        model_checks[model.name] = model_flags(model, ds, args.seed)
        start = time.perf_counter()
        clean_all = clean_records(model, ds, args.batch_size)  # every shard needs every clean prediction
        clean = store.records(model.name, CLEAN, lambda journal: owned_clean(clean_all, shard))
        todo: list[tuple[str, str, list[Record], float, int]] = [
            (CLEAN, "none", complete(clean, ds, shard), time.perf_counter() - start, 1)]
        for threat in threats[modality_of(model)]:
            check_modality(model, threat)
            start = time.perf_counter()
            parts = threat.expand()
            for k, part in enumerate(parts):
                if len(parts) > 1 and on_progress:
                    on_progress(f"{model.name} · {threat.short}", k, len(parts))
                recs = store.records(model.name, part.spec, lambda journal, part=part: attack_records(
                    model, ds, part, clean_all, args.batch_size, args.seed, journal=journal, shard=shard,
                    amp=args.amp, on_warning=on_warning))
                results[(model.name, part.spec)] = recs = complete(recs, ds, shard)
                if len(parts) == 1:
                    todo.append((threat.spec, threat.norm, recs, time.perf_counter() - start, 1))
            if len(parts) > 1:
                pooled = [r for part in parts for r in results[(model.name, part.spec)]]
                if shard is None or not shard.distributed:  # a rank's folder keeps its own records only
                    store.write(model.name, threat.spec, pooled)
                todo.append((threat.spec, threat.norm, pooled, time.perf_counter() - start, len(parts)))
        for spec, unit, recs, seconds, pooled in todo:
            if shard is not None and shard.distributed:
                seconds = gather_max(seconds)
            row = make_row(model, ds, spec, recs, unit, seconds, args.seed, device)
            results[(model.name, spec)] = recs
            if pooled > 1:  # pooled over several threats: one row about len(recs) / pooled examples
                set_pooled_n(row, len(recs) // pooled)
            attach([row], model_checks, {})
            rows.append(row)
            if on_row:
                on_row(row)
    if store.resumed and on_note:
        on_note(f"resumed: {store.resumed} records taken from the previous run in {args.out}")
    per_row = {} if partial else row_flags(rows, results)  # a shard's rows are compared after `robench merge`
    attach(rows, model_checks, per_row)
    if on_warning:
        for model, flags in model_checks.items():
            for f in flags:
                on_warning(f"{model}: {f}")
        for (model, spec), flags in per_row.items():
            for f in flags:
                on_warning(f"{model}: {f}")
    if args.baseline is not None:
        add_baseline(rows, results, models[[getattr(s, "name", s) for s in specs].index(args.baseline)].name)
    store.write_rows(rows)
    if partial and on_note:
        on_note(f"shard {shard.index}/{shard.count}: these rows cover only this shard's examples; "
                f"combine the shards with `robench merge {args.out}`")
    return rows
