"""The training loop every ``robench train`` runs: classifiers (:mod:`robench.training.classifier`)
and language models (:mod:`robench.lm.train`) differ only in how a batch of indices becomes
``(inputs, targets)`` and which parameters skip weight decay.

AdamW with decoupled weight decay, a linear warmup then cosine decay to 0 stepped per batch,
gradients clipped to norm 1, and the examples shuffled each epoch by one generator seeded with the
run's seed: on CPU the same arguments give bit-identical weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robench.checkpoint.card import Card


@dataclass
class EpochStats:
    """Mean training loss and accuracy (per example, or per token for LMs) of one finished epoch."""

    epoch: int
    epochs: int
    loss: float
    train_acc: float


@dataclass
class TrainResult:
    """A written checkpoint: ``test_metric`` is the held-out ``metric`` the card records
    (``"accuracy"`` in [0, 1] for classifiers, ``"perplexity"`` for language models)."""

    path: Path
    card: Card
    sha256: str
    test_metric: float
    metric: str
    seconds: float
    history: list[EpochStats] = field(default_factory=list)


@dataclass(frozen=True)
class Schedule:
    """Optimisation of one run: ``warmup`` linear warmup steps, then cosine decay over the rest."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch (the last one may be short)."""
    return math.ceil(n / batch_size)


def adamw(net: nn.Module, lr: float, weight_decay: float, no_decay: Callable[[str, nn.Parameter], bool]) -> torch.optim.AdamW:
    """AdamW with two groups in parameter order: decayed, then ``no_decay(name, p)`` ones at 0."""
    params = list(net.named_parameters())
    return torch.optim.AdamW([
        {"params": [p for n, p in params if not no_decay(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if no_decay(n, p)], "weight_decay": 0.0}], lr=lr)


def warmup_cosine(opt: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor ``(s + 1) / warmup`` for the first ``warmup`` steps, then a cosine to 0 at ``total``."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))


def fit(
    model: nn.Module,
    net: nn.Module,
    n: int,
    batches: Callable[[int, list[Tensor]], Iterable[tuple[Tensor, Tensor]]],
    schedule: Schedule,
    seed: int,
    no_decay: Callable[[str, nn.Parameter], bool],
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """Train ``model`` (whose trainable weights are ``net``'s) on ``n`` examples; returns the epochs' stats.

    Each epoch draws a permutation of ``range(n)`` from a generator seeded with ``seed`` and cuts it
    into index tensors of ``batch_size``; ``batches(epoch, steps)`` turns them into ``(x, y)`` on the
    model's device. The loss is the mean cross-entropy of ``model(x)`` against ``y`` over every
    target (``(B,)`` labels, or ``(B, T)`` next tokens against ``(B, T, V)`` logits).
    """
    opt = adamw(net, schedule.lr, schedule.weight_decay, no_decay)
    per_epoch = steps_per_epoch(n, schedule.batch_size)
    sched = warmup_cosine(opt, schedule.epochs * per_epoch, schedule.warmup)
    gen = torch.Generator().manual_seed(seed)
    bs, history = schedule.batch_size, []
    for epoch in range(schedule.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        steps = [perm[s * bs : (s + 1) * bs] for s in range(per_epoch)]
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in batches(epoch, steps):
            logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, -2), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * y.numel()
            correct += int((logits.argmax(-1) == y).sum())
            count += y.numel()
        stats = EpochStats(epoch + 1, schedule.epochs, loss_sum / count, correct / count)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
    model.eval()
    return history
