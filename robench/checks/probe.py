"""The preprocessing probe: catch the silent killer of robustness numbers, a preprocessing mismatch.

When a model's clean accuracy on a small stratified probe is near chance although its card (or
the user, ``--expect-accuracy``) expects much better, robench tries the usual culprits on the same
probe and names the one that recovers the accuracy: normalisation applied twice, normalisation
missing, or a label order that differs from the dataset's.
"""

from __future__ import annotations

import torch

from robench.data.base import IMAGE, Dataset, stratified_sample
from robench.data.loader import Feed
from robench.data.preprocess import from_contract
from robench.models.loading import LoadedModel
from robench.models.wrappers import ImageClassifier

PROBE_SIZE = 200


@torch.inference_mode()
def _acc(module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((module(x).argmax(-1).cpu() == y).float().mean())


def probe_preprocessing(model: LoadedModel, ds: Dataset, expected: float | None, seed: int = 0,
                        feed: Feed | None = None) -> str | None:
    """A one-line warning when clean accuracy looks like a preprocessing mismatch, else None.
    ``feed`` decodes file-backed images (default: the card's preprocessing, in this process)."""
    if expected is None or len(ds) == 0:
        return None
    k = len(model.labels)
    chance = 1.0 / k
    if expected < chance + 0.2:
        return None  # the model is not expected to be much better than chance
    sample = ds.subset(stratified_sample(ds.targets, min(PROBE_SIZE, len(ds)), seed))
    y = sample.targets
    module = model.module
    device = model.device
    images = ds.task == IMAGE
    if images:
        x = (feed or Feed(from_contract(model.card.preprocessing), device)).tensor(sample).to(device)
        acc = _acc(module, x, y)
    else:
        with torch.inference_mode():
            acc = float((module.predict_texts(sample.inputs, device).argmax(-1).cpu() == y).float().mean())
    if acc >= chance + 0.5 * (expected - chance):
        return None
    head = (f"model {model.name} scores {100 * acc:.0f}% on a {len(y)}-example probe of {ds.name} where "
            f"{100 * expected:.0f}% is expected (chance {100 * chance:.0f}%)")
    if isinstance(module, ImageClassifier):
        mean, std = module.mean, module.std
        if _acc(module, x * std + mean, y) >= chance + 0.5 * (expected - chance):
            return head + ": the inputs look normalised already, so normalisation is applied twice; feed [0,1] images"
        m = x.mean(dim=(0, 2, 3), keepdim=True)
        s = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        if _acc(lambda t: module.forward_normalized((t - m) / s), x, y) >= chance + 0.5 * (expected - chance):
            return head + ": the model works on normalised inputs, so normalisation is missing; set --mean/--std or fix the card"
    with torch.inference_mode():
        pred = (module(x) if images else module.predict_texts(sample.inputs, device)).argmax(-1).cpu()
    # best one-to-one relabelling by majority vote: a high score means the label order differs
    table = torch.zeros(k, k)
    for p, t in zip(pred.tolist(), y.tolist()):
        table[p, t] += 1
    if table.max(dim=1).values.sum() / len(y) >= chance + 0.5 * (expected - chance) and len(set(table.argmax(1).tolist())) == k:
        return head + ": predictions match the labels after a permutation, so the label order differs from the dataset's"
    return head + ": check the preprocessing contract (normalisation, input size, tokenizer) and the label order"
