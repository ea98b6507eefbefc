"""From MODEL arguments and ``--dataset`` to checked jobs, and the clean pass every threat starts from.

A :class:`Job` is one model with its evaluation data: labels aligned with the model's (an ImageNet
subset maps into the 1,000 classes, ImageNet-A/R restrict the logits), the model's image
preprocessing (:mod:`robench.data.preprocess`) and how images reach it (:class:`~robench.data.loader.Feed`),
the seeded stratified sample drawn from the labels alone (lazy sources open only sampled files),
all checked before any model work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from robench.checkpoint.io import card_path_for
from robench.data.base import IMAGE, Dataset, stratified_sample
from robench.data.card_paths import card_columns, default_dataset
from robench.data.labels import align_labels, positional
from robench.data.loader import Feed, default_workers
from robench.data.preprocess import Preprocessing, from_contract
from robench.data.registry import check_split, load_datasets
from robench.errors import RobenchError
from robench.models.loading import LoadedModel, load_model
from robench.results.records import Record

if TYPE_CHECKING:
    from robench.engine.args import RunArgs

TOP_K = 5


def head_labels(ds: Dataset) -> list[str]:
    """The labels a model evaluated on ``ds`` should have: its label space's (all of ImageNet-1k
    for an ImageNet subset) or its own."""
    return list(ds.label_space.names) if ds.label_space is not None else list(ds.labels)


def restricted(model: LoadedModel, indices: tuple[int, ...], labels: list[str]) -> LoadedModel:
    """``model`` with its logits restricted to ``indices`` (ImageNet-A/R on a 1,000-way head)."""
    from robench.models.wrappers import ImageClassifier

    m = model.module
    if not isinstance(m, ImageClassifier):
        raise RobenchError(f"model {model.name}: label-subset datasets need an image classifier")
    module = ImageClassifier(m.net, m.mean.flatten().tolist(), m.std.flatten().tolist(), logit_indices=indices)
    return replace(model, module=module.to(model.device).eval(), label_names=list(labels))


def check_labels(model: LoadedModel, ds: Dataset) -> tuple[LoadedModel, Dataset]:
    """The model and the data with one label set, or a one-line error naming both.

    A dataset in a larger label space (the ImageNet family) and a model with one output per name of
    that space: the logits restricted to the dataset's classes (ImageNet-A/R, as timm's validate.py)
    or the targets mapped into the space (a val folder with some synsets). Otherwise the targets are
    mapped into the model's labels by name (:func:`robench.data.labels.align_labels`: the data may
    lack some of the model's classes, not have classes it lacks; integer labels by position).
    """
    if model.task != ds.task:
        raise RobenchError(f"model {model.name} is a {model.task} model but dataset {ds.name} is {ds.task}")
    k, mine = len(model.labels), list(model.labels)
    space = ds.label_space
    if space is not None and mine != list(ds.labels) and k == len(space.names) and (mine == list(space.names) or positional(mine)):
        if space.restrict:
            return restricted(model, space.indices, ds.labels), ds
        index = torch.tensor(space.indices, dtype=torch.long)
        return model, replace(ds, labels=list(space.names), targets=index[ds.targets], label_space=None)
    if space is not None and not set(ds.labels) & set(mine):
        takes = (f"a {len(space.names)}-class model with its synset names (or 0..{len(space.names) - 1}) takes"
                 if k == len(space.names) else f"which a {len(space.names)}-class model takes")
        raise RobenchError(f"model {model.name} has {k} labels but dataset {ds.name} has {len(ds.labels)} "
                           f"({'a subset of' if space.restrict else 'in the label space of'} {space.name}'s "
                           f"{len(space.names)} classes, {takes}); evaluate it on a dataset with the same label set")
    return model, align_labels(ds, mine, f"model {model.name}")


def select_examples(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """The whole split, or a seeded stratified sample of ``n`` examples (drawn from the labels alone)."""
    return ds if n is None or n >= len(ds) else ds.subset(stratified_sample(ds.targets, n, seed))


def sample_note(ds: Dataset, n: int | None) -> str | None:
    """The note for ``-n`` above the split's size (every example is used; the rows say n = the size)."""
    if n is None or n <= len(ds):
        return None
    where = ds.name if ds.split in ds.name else f"{ds.name} ({ds.split})"  # a file's split is its name
    return f"note: -n {n} is more than the {len(ds)} examples of {where}; using all {len(ds)}"


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


def model_preprocessing(model: LoadedModel, args: "RunArgs") -> Preprocessing | None:
    """The image geometry the model takes (its card or timm data config, then the overrides)."""
    pre = model.card.preprocessing
    if pre.get("kind") != "image":
        return None
    return from_contract(pre).with_overrides(args.img_size, args.crop_pct, args.interpolation)


def check_inputs(model: LoadedModel, ds: Dataset, pre: Preprocessing | None) -> None:
    """In-memory images must already have the model's shape; file-backed ones are resized by ``pre``.
    An ``--img-size`` the model cannot take is refused before any work."""
    if pre is None:
        return
    want = (pre.channels, *pre.size)
    card = model.card.preprocessing
    if isinstance(ds.inputs, torch.Tensor) or getattr(ds.inputs, "presized", False):
        got = tuple(ds.inputs.shape[1:]) if isinstance(ds.inputs, torch.Tensor) else tuple(ds.inputs.shape)
        if got != want:
            raise RobenchError(
                f"dataset {ds.name} has images of shape {got} (C, H, W) but model {model.name} expects {want}; "
                "use a dataset of that size or a model built for it"
            )
    if tuple(pre.size) != tuple(map(int, card["size"])):
        try:
            with torch.inference_mode():
                model.module(torch.zeros(1, *want, device=model.device))
        except (RuntimeError, ValueError, AssertionError) as e:
            raise RobenchError(f"model {model.name} does not take {want[1]}x{want[2]} inputs ({str(e).splitlines()[0][:120]}); "
                               f"drop --img-size or build the model for that size (timm: --model-arg img_size={want[1]})") from None


def load_spec(spec: str, args: "RunArgs", device: torch.device, datasets: dict | None = None) -> LoadedModel:
    """Load one MODEL argument with the run's options (a timm model's head is sized by --dataset:
    its labels, or all 1,000 ImageNet classes for the ImageNet family; a timm:DIR folder's head is
    its config's, checked against them)."""
    labels = None
    if str(spec).startswith("timm:"):
        folder = Path(str(spec)[len("timm:"):]).is_dir()
        if not args.dataset and not folder:
            raise RobenchError(f"{spec}: a timm model needs --dataset (its labels size the classifier head)")
        if args.dataset:
            check_split(args.dataset, args.split)
            labels = head_labels(dataset_parts(args.dataset, args, datasets)[0])
    return load_model(spec, device, arch=args.arch, labels=labels, model_args=args.model_args, mean=args.mean, std=args.std,
                      use_ema=args.use_ema)


def dataset_parts(source: str, args: "RunArgs", cache: dict | None = None, columns: dict | None = None) -> list[Dataset]:
    """The dataset(s) of ``source`` (loaded once per run: ``cache`` maps (source, split) to them)."""
    cache = {} if cache is None else cache
    key = (source, args.split)
    if key not in cache:
        cache[key] = load_datasets(source, args.split, args.columns if columns is None else columns)
    return cache[key]


@dataclass
class Job:
    """One model with its (sampled) evaluation data, checked before any work starts."""

    model: LoadedModel
    ds: Dataset
    expected_accuracy: float | None
    feed: Feed | None = None  # image models: how images reach the model (None: text)
    skipped: list[str] = field(default_factory=list)  # unreadable images left out (--skip-unreadable)

    @property
    def preprocessing(self) -> str:
        """What every image goes through, in words ("" for text and in-memory images)."""
        if self.feed is None or self.feed.pre is None or not self.ds.lazy or getattr(self.ds.inputs, "presized", False):
            return ""
        return self.feed.pre.describe()


def prepare(args: "RunArgs", models: list[LoadedModel], datasets: dict | None = None,
            on_note: Callable[[str], None] | None = None) -> list[Job]:
    """Load and check each model's dataset (fail fast on any bad input), sample the examples.
    A dataset with several parts (ImageNet-C) gives one job per part."""
    jobs, noted = [], set()
    workers = default_workers() if args.workers is None else args.workers
    for model in models:
        if model.module.training:
            raise RobenchError(f"model {model.name} is in training mode (dropout or batch-norm statistics would change "
                               "under attack); call .eval() on it first")
        name, source = dataset_of(model, args.dataset)
        check_split(source, args.split)
        columns = args.columns if args.dataset else card_columns(model.card, args.columns)
        for part in dataset_parts(source, args, datasets, columns):
            if name != source:
                part = replace(part, name=name)  # rows keep the card's name for its own data
            m, ds = check_labels(model, part)
            note = sample_note(ds, args.num_examples)
            if note and on_note and (source, ds.part) not in noted:
                noted.add((source, ds.part))
                on_note(note)
            if ds.real_labels is not None and list(ds.labels) != list(part.labels):  # mapped into another label set
                raise RobenchError(f"{ds.name}: ReaL labels score models over ImageNet-1k's 1,000 classes; model "
                                   f"{model.name} has {len(model.labels)} (evaluate it on imagenet:DIR instead)")
            pre = model_preprocessing(m, args) if ds.task == IMAGE else None
            check_inputs(m, ds, pre)
            ds = select_examples(ds, args.num_examples, args.seed)
            ds.identity()  # a missing or unreadable sampled file is reported now, before any model work
            expected = args.expect_accuracy
            if expected is None and model.card.evaluation.get("dataset") == ds.name and not ds.part:
                expected = model.card.evaluation.get("clean_accuracy")
            feed = Feed(pre, m.device, workers if ds.lazy else 0, args.skip_unreadable) if ds.task == IMAGE else None
            jobs.append(Job(m, ds, expected, feed))
    return jobs


@dataclass
class CleanPass:
    """Clean predictions of every readable example (positions in ``ds``), and the unreadable ones."""

    positions: list[int]
    preds: torch.Tensor
    top5: torch.Tensor | None  # (n, 5) best classes first, for models with more than 5 classes
    failed: list[tuple[int, str, str]] = field(default_factory=list)


def check_logits(model: LoadedModel, logits: torch.Tensor) -> None:
    if not torch.isfinite(logits).all():
        raise RobenchError(f"model {model.name} produced NaN or inf logits; the checkpoint or its inputs are broken")


def top_classes(logits: torch.Tensor) -> torch.Tensor | None:
    """The 5 best classes per row (None for fewer than 6 classes: top-5 would be trivial)."""
    if logits.shape[-1] <= TOP_K:
        return None
    return logits.float().topk(TOP_K, dim=-1).indices.cpu()


@torch.inference_mode()
def clean_pass(model: LoadedModel, ds: Dataset, batch_size: int, feed: Feed | None = None,
               on_batch: Callable[[int, int], None] | None = None) -> CleanPass:
    """One forward pass over ``ds`` in order: predictions, top-5 classes, unreadable files
    (``on_batch(done, total)`` hears the examples done after each batch)."""
    module, device = model.module, model.device
    positions: list[int] = []
    preds, tops, failed = [], [], []
    plan = [range(s, min(s + batch_size, len(ds))) for s in range(0, len(ds), batch_size)]
    if ds.task == IMAGE:
        feed = feed or Feed(from_contract(model.card.preprocessing), device)
        for batch in feed.batches(ds, plan):
            failed += batch.failed
            if not batch.positions:
                continue
            logits = module(batch.x)
            check_logits(model, logits)
            positions += batch.positions
            preds.append(logits.argmax(-1).cpu())
            tops.append(top_classes(logits))
            if on_batch:
                on_batch(len(positions) + len(failed), len(ds))
    else:
        for pos in plan:
            logits = module(module.encode([ds.inputs[p] for p in pos]).to(device))
            check_logits(model, logits)
            positions += list(pos)
            preds.append(logits.argmax(-1).cpu())
            tops.append(top_classes(logits))
            if on_batch:
                on_batch(len(positions), len(ds))
    top5 = None if not tops or tops[0] is None else torch.cat(tops)
    return CleanPass(positions, torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long), top5, failed)


def predict(model: LoadedModel, ds: Dataset, batch_size: int, feed: Feed | None = None) -> torch.Tensor:
    """Clean predictions for every example, in dataset order (unreadable images are an error)."""
    return clean_pass(model, ds, batch_size, feed).preds


def records_of(ds: Dataset, cp: CleanPass) -> list[Record]:
    """The clean records of a pass (the threat ``none``: attacked = clean), with each image's ReaL
    labels as the model's class indices when the data has them (``robench merge`` re-scores from
    the records alone)."""
    index = {n: i for i, n in enumerate(ds.labels)}
    out = []
    for j, p in enumerate(cp.positions):
        top5 = None if cp.top5 is None else cp.top5[j].tolist()
        pred = int(cp.preds[j])
        real = None if ds.real_labels is None else [index[n] for n in ds.real_labels[p] if n in index]
        out.append(Record(id=ds.ids[p], label=int(ds.targets[p]), clean_pred=pred, attacked_pred=pred,
                          clean_top5=top5, attacked_top5=top5, real_labels=real))
    return out


def clean_records(model: LoadedModel, ds: Dataset, batch_size: int, feed: Feed | None = None) -> list[Record]:
    """Clean records of every example of ``ds`` (unreadable images are an error)."""
    return records_of(ds, clean_pass(model, ds, batch_size, feed))


def run_clean(job: Job, batch_size: int, on_batch: Callable[[int, int], None] | None = None) -> list[Record]:
    """The job's clean records; with ``--skip-unreadable``, unreadable images leave the job's data
    (noted in ``job.skipped``) so every threat sees the same examples."""
    cp = clean_pass(job.model, job.ds, batch_size, job.feed, on_batch)
    if cp.failed:
        job.skipped = [f"{where}: {reason}" for _, where, reason in cp.failed]
        job.ds = job.ds.subset(cp.positions)
        cp = replace(cp, positions=list(range(len(cp.positions))))
    if len(job.ds) == 0:
        raise RobenchError(f"dataset {job.ds.name}: no readable images left")
    return records_of(job.ds, cp)


def header_lines(jobs: list[Job], device: torch.device) -> dict[tuple[str, str], str]:
    """What the run does, one line per (model, data): examples, preprocessing, decoding."""
    lines = {}
    parts: dict[tuple[str, str], int] = {}
    for j in jobs:
        parts[(j.model.name, j.ds.name)] = parts.get((j.model.name, j.ds.name), 0) + 1
    seen = set()
    for j in jobs:
        key = (j.model.name, j.ds.name)
        if key in seen:
            continue
        seen.add(key)
        what = f"{j.model.name} on {j.ds.name}" + (f" ({parts[key]} parts)" if parts[key] > 1 else f" ({j.ds.split})")
        threads = torch.get_num_threads()
        line = f"{what}: n={len(j.ds)} on {device} · {threads} thread{'s' if threads != 1 else ''}"
        if j.preprocessing:
            workers = j.feed.workers if j.feed is not None else 0
            line += f" · images: {j.preprocessing} · {workers or 'no'} decoding worker{'s' if workers != 1 else ''}"
        lines[key] = line
    return lines
