"""Run one threat on one model: attack only what is still correct, keep per-example records."""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch

from robench.data.base import Dataset
from robench.data.loader import Feed
from robench.data.preprocess import from_contract
from robench.device import is_out_of_memory, resolve_amp
from robench.engine.distributed import Shard
from robench.errors import RobenchError
from robench.engine.jobs import top_classes
from robench.models.loading import LoadedModel
from robench.results.records import Record
from robench.results.store import Journal
from robench.seeds import batch_seed, example_seed
from robench.threats.base import Threat, perturbation_norms


def check_modality(model: LoadedModel, threat: Threat) -> None:
    modality = "image" if model.task == "image-classification" else "text"
    if threat.modality != modality:
        raise RobenchError(f"threat {threat.name!r} is a {threat.modality} threat but model {model.name} is a {modality} model")


KeepAdv = Callable[[list[int], torch.Tensor], None]


def attack_records(
    model: LoadedModel, ds: Dataset, threat: Threat, clean: list[Record], batch_size: int, seed: int,
    keep_adv: KeepAdv | None = None, journal: Journal | None = None, shard: Shard | None = None,
    amp: str = "off", on_warning: Callable[[str], None] | None = None, feed: Feed | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[Record]:
    """Records of ``threat`` on ``ds``; examples misclassified when clean are not attacked.

    Batches are fixed slices of the attacked examples, each seeded by its position, so a batch
    computed now equals the one a previous (killed) run appended to ``journal``: batches found there
    are taken as they are, new ones are appended. Images come from ``feed`` (file-backed sources are
    decoded by its worker processes while the previous batch is attacked; only attacked examples
    are read). ``keep_adv(positions, adv)``, when given, receives the adversarial inputs of every
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
    engine = _Engine(model, ds, threat, records, seed, keep_adv, resolve_amp(amp, model.device), on_warning)
    total = finished + sum(len(pos) for _, pos in batches)
    if on_batch:
        on_batch(finished, total)
    if threat.modality == "image":
        feed = feed or Feed(from_contract(model.card.preprocessing), model.device)
        loaded = feed.batches(ds, [pos for _, pos in batches])  # decoded ahead by the workers
    for start, pos in batches:
        began = time.perf_counter()
        if threat.modality == "image":
            batch = next(loaded)
            if batch.failed:  # readable in the clean pass, unreadable now: the run cannot stay paired
                _, where, reason = batch.failed[0]
                raise RobenchError(f"image {where} became unreadable during the run ({reason}); restore it and rerun")
            engine.run_slice(pos, start, batch.x, batch.y)
        else:
            engine.run_slice(pos, start)
        if journal is not None and not all(ds.ids[p] in journal.done for p in pos):  # keep_adv recomputes journaled ones
            journal.append([records[p] for p in pos], seconds=time.perf_counter() - began)
        finished += len(pos)
        if on_batch:
            on_batch(finished, total)
    engine.report_amp()
    return records if shard is None else [r for p, r in enumerate(records) if p in owned]


class _Engine:
    """Attacks slices of examples: pieces that fit in memory, autocast with an fp32 check."""

    def __init__(self, model: LoadedModel, ds: Dataset, threat: Threat, records: list[Record], seed: int,
                 keep_adv: KeepAdv | None, amp: torch.dtype | None,
                 on_warning: Callable[[str], None] | None) -> None:
        self.model, self.ds, self.threat, self.records, self.seed, self.keep_adv = model, ds, threat, records, seed, keep_adv
        self.amp = amp if threat.modality == "image" else None  # text attacks keep fp32 (their inputs are token ids)
        self.on_warning = on_warning
        self.piece: int | None = None  # largest piece size that fitted after an out-of-memory error
        self.checked = self.disagree = 0  # attacked examples compared in fp32 / whose outcome autocast got wrong

    def run_slice(self, pos: list[int], start: int, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> None:
        """Attack the slice ``pos`` (starting at ``start`` among the attacked examples) piece by piece;
        ``x``/``y`` are its images and labels on the device (image threats)."""
        i = 0
        while i < len(pos):
            size = min(len(pos) - i, self.piece or len(pos))
            try:
                if x is None:
                    _attack_texts(self.model, self.ds, self.threat, self.records, pos[i : i + size], start + i, self.seed)
                else:
                    self._attack_images(pos[i : i + size], start + i, x[i : i + size], y[i : i + size])
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

    def _attack_images(self, pos: list[int], start: int, x: torch.Tensor, y: torch.Tensor) -> None:
        model, ds, threat, records, seed = self.model, self.ds, self.threat, self.records, self.seed
        num_classes = len(model.labels)
        amp = torch.autocast(x.device.type, dtype=self.amp) if self.amp is not None else contextlib.nullcontext()
        with amp:
            out = threat.attack(model.module, x, y, num_classes, batch_seed(seed, start),
                                example_seeds=[example_seed(seed, ds.ids[p]) for p in pos])
        pred, logits = out.adv_pred, out.adv_logits
        if self.amp is not None or logits is None:  # fp32 predictions of the kept inputs
            with torch.inference_mode():
                logits = model.module(out.adv)
            pred = logits.argmax(-1)
        if self.amp is not None:  # count where autocast's outcome differs from fp32's
            self.checked += len(pos)
            self.disagree += int(((pred == y) != (out.adv_pred == y)).sum())
        top5 = top_classes(logits)
        norms = perturbation_norms(out.adv, x)
        unit = norms.get(threat.norm, norms["linf"])
        for j, p in enumerate(pos):
            r = records[p]
            r.attacked_pred = int(pred[j])
            r.attacked_top5 = None if top5 is None else top5[j].tolist()
            r.linf, r.l2, r.perturbation = float(norms["linf"][j]), float(norms["l2"][j]), float(unit[j])
            r.queries = float(out.queries[j])
        if self.keep_adv is not None:
            self.keep_adv(list(pos), out.adv.detach())

    def report_amp(self) -> None:
        """Warn when the fp32 check disagrees with autocast on more than 1 in 100 attacked examples."""
        if self.amp is not None and self.on_warning and self.disagree * 100 > self.checked:
            name = str(self.amp).removeprefix("torch.")
            self.on_warning(
                f"{self.model.name} · {self.threat.short}: fp32 and {name} autocast disagree on whether "
                f"{self.disagree} of {self.checked} attacked examples are broken (recorded: fp32); "
                "rerun with --amp off for attacks computed in fp32")


def _attack_texts(model: LoadedModel, ds: Dataset, threat, records: list[Record], pos: list[int],
                  start: int, seed: int) -> None:
    from robench.threats.text.base import text_probs
    from robench.threats.text.words import changed_word_fraction

    texts = [ds.inputs[p] for p in pos]
    labels = [int(ds.targets[p]) for p in pos]
    out = threat.attack_texts(model.module, texts, labels, [example_seed(seed, ds.ids[p]) for p in pos])
    probs = out.adv_probs  # what adv_pred came from; a threat that does not say is scored once more
    if probs is None and len(model.labels) > 5 and pos:
        probs = text_probs(model.module, out.adv_texts)
    top5 = None if probs is None else top_classes(probs)
    for j, p in enumerate(pos):
        r = records[p]
        r.attacked_pred = int(out.adv_pred[j])
        r.attacked_top5 = None if top5 is None else top5[j].tolist()
        r.adv_text = out.adv_texts[j]
        r.perturbation = changed_word_fraction(texts[j], out.adv_texts[j])
        r.queries = float(out.queries[j])
