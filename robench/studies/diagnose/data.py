"""The examples ``robench diagnose`` runs a model on: the evaluation engine's checked, seeded
sample of its dataset (:func:`robench.engine.jobs.prepare`), or windows of a token file for a
language model."""

from __future__ import annotations

from dataclasses import replace
import numpy as np
import torch

from robench.data.base import LM as LM_TASK, Dataset, content_sha256
from robench.errors import RobenchError
from robench.lm.corpus import read_lines
from robench.models.loading import LoadedModel


def lm_windows(model: LoadedModel, name: str, n: int | None, seed: int) -> Dataset:
    """A seeded sample of ``n`` (all if None) consecutive context-length windows of token file ``name``,
    as a :class:`~robench.data.base.Dataset` of token-id rows (ids = window index, targets unused)."""
    tok = model.module.tokenizer
    context = tok.max_length
    stream = tok.stream(read_lines(name, "evaluation file"))
    k = len(stream) // context
    if k == 0:
        raise RobenchError(f"{name} holds {len(stream)} tokens, fewer than one context of {context} for {model.name}")
    keep = np.arange(k) if n is None or n >= k else np.sort(np.random.default_rng(seed).choice(k, n, replace=False))
    x = stream[: k * context].view(k, context)[torch.as_tensor(keep)]
    y = torch.zeros(len(keep), dtype=torch.long)
    return Dataset(name=name, task=LM_TASK, split="test", labels=["-"], inputs=x, targets=y,
                   ids=[int(i) for i in keep], sha256=content_sha256(x, y))


def examples(model: LoadedModel, dataset: str | None, split: str, n: int | None, seed: int, datasets: dict) -> Dataset:
    """The examples of ``model`` on ``dataset`` (default: its card's, :func:`robench.engine.jobs.dataset_of`),
    checked before any model work:
    a seeded stratified sample of the split with labels aligned to the model's and image files
    decoded once as the model's preprocessing feeds them (``n`` examples, all if None, drawn with
    ``seed``); for a language model, :func:`lm_windows`. ``datasets`` caches the loaded data across models."""
    from robench.data.imagenet import split_source
    from robench.data.loader import Feed
    from robench.data.registry import check_split
    from robench.engine.args import RunArgs
    from robench.engine.jobs import dataset_of, dataset_parts, prepare

    name, source = dataset_of(model, dataset)
    if model.task == LM_TASK:  # a token file: windows of the model's context
        return replace(lm_windows(model, source, n, seed), name=name)
    run = RunArgs(dataset=dataset, split=split, num_examples=n, seed=seed, workers=0)
    check_split(source, split)
    if split_source(source) is not None and len(parts := dataset_parts(source, run, datasets)) > 1:
        raise RobenchError(f"{source} has {len(parts)} parts (one per corruption and severity); "
                           "evaluate it with robench evaluate, or pick one folder: imagenet:DIR/CORRUPTION/SEVERITY")
    job, = prepare(run, [model], datasets)
    sample = job.ds
    if sample.lazy:  # image files: the (small) sample decoded once, as the model's preprocessing feeds it
        sample = replace(sample, inputs=Feed(job.feed.pre, torch.device("cpu")).tensor(sample))
    return sample
