"""Run one threat on one model: attack only what is still correct, keep per-example records."""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch

from robench.data.base import Dataset
from robench.data.loader import Feed
from robench.device import is_out_of_memory, resolve_amp
from robench.engine.distributed import Shard
from robench.engine.jobs import top_classes
from robench.engine.modalities import Modality, modality_for
from robench.errors import RobenchError
from robench.models.loading import LoadedModel
from robench.results.records import Record
from robench.results.store import Journal
from robench.seeds import batch_seed, example_seed
from robench.threats.base import Threat, ThreatBatch


def check_modality(model: LoadedModel, threat: Threat) -> None:
    """Refuse a threat of another modality than ``model``'s (an image threat on a text model)."""
    modality = modality_for(model).name
    if threat.modality != modality:
        raise RobenchError(f"threat {threat.name!r} is a {threat.modality} threat but model {model.name} is a {modality} model")


KeepAdv = Callable[[list[int], torch.Tensor], None]  # (positions, adversarial images): image threats only


def attack_records(
    model: LoadedModel, ds: Dataset, threat: Threat, clean: list[Record], batch_size: int, seed: int,
    keep_adv: KeepAdv | None = None, journal: Journal | None = None, shard: Shard | None = None,
    amp: str = "off", on_warning: Callable[[str], None] | None = None, feed: Feed | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[Record]:
    """Records of ``threat`` on ``ds``; examples misclassified when clean are not attacked.

    Batches are fixed slices of the attacked examples, each seeded by its position, so a batch
    computed now equals the one a previous (killed) run appended to ``journal``: batches found there
    are taken as they are, new ones are appended. Inputs come from the model's modality
    (:mod:`robench.engine.modalities`): images from ``feed`` (file-backed sources are decoded by its
    worker processes while the previous batch is attacked; only attacked examples are read), texts
    as they are. Every threat runs as ``threat(model, ThreatBatch) -> Outcome``, whatever its
    modality. ``keep_adv(positions, adv)``, when given, receives the adversarial inputs of every
    attacked batch, in position order; it needs every batch computed, so it ignores the journal.
    ``on_batch(done, total)`` hears the attacked examples finished so far (journaled ones first).
    With ``shard``, only the batches of that shard are attacked and only its records are returned
    (in dataset order; see :mod:`robench.engine.distributed`).

    ``amp`` (``auto|off|bf16|fp16``, see :func:`robench.device.resolve_amp`) runs the attack's forward
    passes under autocast; the recorded predictions are fp32 ones of the kept adversarial inputs,
    and ``on_warning`` hears when fp32 and autocast disagree on more than 1 in 100 attacked examples.
    A slice that runs out of memory is attacked in halves (then quarters, ...; later slices start at
    the size that fit), each piece seeded by its own start position, and ``on_warning`` hears it
    once. Results are deterministic given the sequence of splits, but a split changes the random
    draws of randomised attacks (each piece has its own seed). A slice enters ``journal`` whole,
    once all its pieces are done.
    """
    check_modality(model, threat)
    records = [Record(r.id, r.label, r.clean_pred, r.clean_pred, clean_top5=r.clean_top5, attacked_top5=r.clean_top5)
               for r in clean]
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    done = journal.done if journal is not None and keep_adv is None else {}
    batches, finished = [], 0  # finished: attacked examples whose records are known (journal, then computed)
    owned = set(range(len(clean))) if shard is None else {p for p in range(len(clean)) if shard.owns_position(p)}
    for start in range(0, len(todo), batch_size):
        pos = todo[start : start + batch_size]
        if shard is not None:
            owned.difference_update(pos)
            if not shard.owns_batch(start // batch_size):
                continue
            owned.update(pos)
        if pos and all(ds.ids[p] in done for p in pos):
            for p in pos:
                records[p] = done[ds.ids[p]]
            finished += len(pos)
        else:
            batches.append((start, pos))
    modality = modality_for(model)
    engine = _Engine(model, modality, ds, threat, records, seed, keep_adv, resolve_amp(amp, model.device), on_warning)
    total = finished + sum(len(pos) for _, pos in batches)
    if on_batch:
        on_batch(finished, total)
    loaded = modality.batches(model, ds, [pos for _, pos in batches], feed)
    for start, pos in batches:
        began = time.perf_counter()
        inputs, labels = next(loaded)
        engine.run_slice(pos, start, inputs, labels)
        if journal is not None and not all(ds.ids[p] in journal.done for p in pos):  # keep_adv recomputes journaled ones
            journal.append([records[p] for p in pos], seconds=time.perf_counter() - began)
        finished += len(pos)
        if on_batch:
            on_batch(finished, total)
    engine.report_amp()
    return records if shard is None else [r for p, r in enumerate(records) if p in owned]


class _Engine:
    """Attacks slices of examples: pieces that fit in memory, autocast with an fp32 check."""

    def __init__(self, model: LoadedModel, modality: Modality, ds: Dataset, threat: Threat, records: list[Record],
                 seed: int, keep_adv: KeepAdv | None, amp: torch.dtype | None,
                 on_warning: Callable[[str], None] | None) -> None:
        self.model, self.modality, self.ds, self.threat, self.records = model, modality, ds, threat, records
        self.seed, self.keep_adv = seed, keep_adv
        self.amp = amp if modality.autocast else None
        self.on_warning = on_warning
        self.piece: int | None = None  # largest piece size that fitted after an out-of-memory error
        self.checked = self.disagree = 0  # attacked examples compared in fp32 / whose outcome autocast got wrong

    def run_slice(self, pos: list[int], start: int, inputs: torch.Tensor | list[str], labels: torch.Tensor) -> None:
        """Attack the slice ``pos`` (starting at ``start`` among the attacked examples) piece by piece;
        ``inputs``/``labels`` are its examples as the model's modality fetched them."""
        i = 0
        while i < len(pos):
            size = min(len(pos) - i, self.piece or len(pos))
            try:
                self._attack(pos[i : i + size], start + i, inputs[i : i + size], labels[i : i + size])
                i += size
                continue
            except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError
                if not is_out_of_memory(e):
                    raise
                if size == 1:
                    raise RobenchError(f"out of memory on {self.model.device} attacking a single example with "
                                       f"{self.threat.short}; free memory or use another --device") from None
            # out of the except block: the traceback no longer holds the failed piece's tensors
            if self.model.device.type == "cuda":
                torch.cuda.empty_cache()
            if self.piece is None and self.on_warning:
                self.on_warning(f"{self.model.name} · {self.threat.short}: out of memory with {size} examples per "
                                f"batch; continuing with {size // 2} (pieces are seeded by their own positions, so "
                                "randomised attacks draw differently than with a smaller --batch-size from the start)")
            self.piece = size // 2

    def _attack(self, pos: list[int], start: int, inputs: torch.Tensor | list[str], labels: torch.Tensor) -> None:
        model, ds, threat, seed = self.model, self.ds, self.threat, self.seed
        batch = ThreatBatch(inputs, labels, len(model.labels), batch_seed(seed, start),
                            example_seeds=[example_seed(seed, ds.ids[p]) for p in pos])
        autocast = torch.autocast(model.device.type, dtype=self.amp) if self.amp is not None else contextlib.nullcontext()
        with autocast:
            out = threat(model.module, batch)
        pred, scores = out.adv_pred, out.scores
        if self.amp is not None:  # fp32 predictions of the kept inputs; count where autocast's outcome differs
            scores = self.modality.score(model.module, out.adv)
            pred = scores.argmax(-1)
            self.checked += len(pos)
            self.disagree += int(((pred == labels) != (out.adv_pred == labels)).sum())
        top5 = top_classes(scores)
        for j, p in enumerate(pos):
            r = self.records[p]
            r.attacked_pred = int(pred[j])
            r.attacked_top5 = None if top5 is None else top5[j].tolist()
            r.perturbation, r.queries = float(out.perturbation[j]), float(out.queries[j])
            if out.linf is not None:  # pixel sizes (image threats)
                r.linf, r.l2 = float(out.linf[j]), float(out.l2[j])
            if out.adv_text is not None:
                r.adv_text = out.adv_text[j]
        if self.keep_adv is not None:
            self.keep_adv(list(pos), out.adv)

    def report_amp(self) -> None:
        """Warn when the fp32 check disagrees with autocast on more than 1 in 100 attacked examples."""
        if self.amp is not None and self.on_warning and self.disagree * 100 > self.checked:
            name = str(self.amp).removeprefix("torch.")
            self.on_warning(
                f"{self.model.name} · {self.threat.short}: fp32 and {name} autocast disagree on whether "
                f"{self.disagree} of {self.checked} attacked examples are broken (recorded: fp32); "
                "rerun with --amp off for attacks computed in fp32")
