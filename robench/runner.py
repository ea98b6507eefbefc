"""Run one threat on one model: attack only what is still correct, keep per-example records."""

from __future__ import annotations

import torch

from robench.data.base import Dataset
from robench.errors import RobenchError
from robench.loading import LoadedModel
from robench.results.records import Record
from robench.results.store import Journal
from robench.threats.base import Threat, perturbation_norms


def check_modality(model: LoadedModel, threat: Threat) -> None:
    modality = "image" if model.task == "image-classification" else "text"
    if threat.modality != modality:
        raise RobenchError(f"threat {threat.name!r} is a {threat.modality} threat but model {model.name} is a {modality} model")


def batch_seed(seed: int, start: int) -> int:
    """Seed of the batch starting at dataset position ``start``: independent of model order."""
    return (seed * 1_000_003 + start) % (2**63)


def attack_records(
    model: LoadedModel, ds: Dataset, threat: Threat, clean: list[Record], batch_size: int, seed: int,
    keep_adv: dict[int, torch.Tensor] | None = None, journal: Journal | None = None,
) -> list[Record]:
    """Records of ``threat`` on ``ds``; examples misclassified when clean are not attacked.

    Batches are fixed slices of the attacked examples, each seeded by its position, so a batch
    computed now equals the one a previous (killed) run appended to ``journal``: batches found there
    are taken as they are, new ones are appended. ``keep_adv``, when given, receives the adversarial
    input of every attacked example (by position); it needs every batch computed, so it ignores the journal.
    """
    check_modality(model, threat)
    records = [Record(r.id, r.label, r.clean_pred, r.clean_pred) for r in clean]
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    done = journal.done if journal is not None and keep_adv is None else {}
    batches = []
    for start in range(0, len(todo), batch_size):
        pos = todo[start : start + batch_size]
        if pos and all(ds.ids[p] in done for p in pos):
            for p in pos:
                records[p] = done[ds.ids[p]]
        else:
            batches.append((start, pos))
    attack_batch = _attack_texts if threat.modality == "text" else _attack_images
    for start, pos in batches:
        attack_batch(model, ds, threat, records, pos, start, seed, keep_adv)
        if journal is not None:
            journal.append([records[p] for p in pos])
    return records


def _attack_images(model: LoadedModel, ds: Dataset, threat: Threat, records: list[Record], pos: list[int],
                   start: int, seed: int, keep_adv: dict[int, torch.Tensor] | None) -> None:
    device = model.device
    num_classes = len(model.labels)
    idx = torch.as_tensor(pos, dtype=torch.long)
    x = ds.inputs[idx].to(device)
    y = ds.targets[idx].to(device)
    out = threat.attack(model.module, x, y, num_classes, batch_seed(seed, start),
                        example_seeds=[example_seed(seed, ds.ids[p]) for p in pos])
    norms = perturbation_norms(out.adv, x)
    unit = norms.get(threat.norm, norms["linf"])
    for j, p in enumerate(pos):
        r = records[p]
        r.attacked_pred = int(out.adv_pred[j])
        r.linf, r.l2, r.perturbation = float(norms["linf"][j]), float(norms["l2"][j]), float(unit[j])
        r.queries = float(out.queries[j])
        if keep_adv is not None:
            keep_adv[p] = out.adv[j].detach().cpu()


def example_seed(seed: int, example_id: int) -> int:
    """Per-example seed: the same (seed, id) gives the same randomness in any batch or order."""
    return (seed * 1_000_003 + example_id * 7_919 + 12_345) % (2**63)


def _attack_texts(model: LoadedModel, ds: Dataset, threat, records: list[Record], pos: list[int],
                  start: int, seed: int, keep_adv: dict | None) -> None:
    from robench.threats.text.words import changed_word_fraction

    texts = [ds.inputs[p] for p in pos]
    labels = [int(ds.targets[p]) for p in pos]
    out = threat.attack_texts(model.module, texts, labels, [example_seed(seed, ds.ids[p]) for p in pos])
    for j, p in enumerate(pos):
        r = records[p]
        r.attacked_pred = int(out.adv_pred[j])
        r.adv_text = out.adv_texts[j]
        r.perturbation = changed_word_fraction(texts[j], out.adv_texts[j])
        r.queries = float(out.queries[j])
