"""Run one threat on one model: attack only what is still correct, keep per-example records."""

from __future__ import annotations

import torch

from robench.data.base import Dataset
from robench.errors import RobenchError
from robench.loading import LoadedModel
from robench.results.records import Record
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
    keep_adv: dict[int, torch.Tensor] | None = None,
) -> list[Record]:
    """Records of ``threat`` on ``ds``; examples misclassified when clean are not attacked.

    ``keep_adv``, when given, receives the adversarial input of every attacked example (by position).
    """
    check_modality(model, threat)
    records = [Record(r.id, r.label, r.clean_pred, r.clean_pred) for r in clean]
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    if threat.modality == "text":
        _attack_texts(model, ds, threat, records, todo, batch_size, seed)
        return records
    device = model.device
    num_classes = len(model.labels)
    for start in range(0, len(todo), batch_size):
        pos = todo[start : start + batch_size]
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
    return records


def example_seed(seed: int, example_id: int) -> int:
    """Per-example seed: the same (seed, id) gives the same randomness in any batch or order."""
    return (seed * 1_000_003 + example_id * 7_919 + 12_345) % (2**63)


def _attack_texts(model: LoadedModel, ds: Dataset, threat, records: list[Record], todo: list[int], batch_size: int, seed: int) -> None:
    from robench.threats.text.words import changed_word_fraction

    for start in range(0, len(todo), batch_size):
        pos = todo[start : start + batch_size]
        texts = [ds.inputs[p] for p in pos]
        labels = [int(ds.targets[p]) for p in pos]
        out = threat.attack_texts(model.module, texts, labels, [example_seed(seed, ds.ids[p]) for p in pos])
        for j, p in enumerate(pos):
            r = records[p]
            r.attacked_pred = int(out.adv_pred[j])
            r.adv_text = out.adv_texts[j]
            r.perturbation = changed_word_fraction(texts[j], out.adv_texts[j])
            r.queries = float(out.queries[j])
