"""What every torchattacks-backed image threat shares: seeding, the monitor, the final check."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

from robench.errors import RobenchError
from robench.threats.base import Outcome, ThreatBatch
from robench.threats.image.base import ImageThreat
from robench.threats.registry import Param

if TYPE_CHECKING:
    from torch import nn

EPS = Param("eps", "float", 8 / 255, "perturbation budget in [0,1] pixel space", "pixels", low=0.0, high=1.0)
TARGET = Param("target", "choice", "none", "targeted mode (robust = still correct either way)", choices=("none", "random", "least-likely"))


def set_target_mode(attack: Any, target: str) -> None:
    if target == "random":
        attack.set_mode_targeted_random()
    elif target == "least-likely":
        attack.set_mode_targeted_least_likely()


@contextlib.contextmanager
def input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Attacks need gradients with respect to inputs only: freeze the parameters meanwhile (autograd
    then skips their bookkeeping, ~10% of an attack step here) and restore them afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class TorchattacksThreat(ImageThreat):
    """Runs ``make_attack(monitored_model)`` ``restarts`` times under a fixed seed."""

    aligned: bool = True  # every forward pass carries the whole batch in order (see monitor.py)
    early_exit: bool = True  # aligned attacks stop computing an example once it is broken (see monitor.py)

    def make_attack(self, model: nn.Module, num_classes: int, seed: int) -> Any:
        raise NotImplementedError

    def warm_up(self) -> None:
        import torchattacks  # noqa: F401  (~3 s on first import: not the first threat's seconds)

    def check_available(self) -> None:
        import importlib.util

        if importlib.util.find_spec("torchattacks") is None:
            raise RobenchError(f"threat {self.name!r} runs torchattacks, which is not installed; "
                               "install it: pip install --no-deps torchattacks==3.5.1 (or run scripts/setup.sh)")

    def restarts_count(self) -> int:
        return 1

    def perturb(self, model: nn.Module, batch: ThreatBatch) -> Outcome:
        import torch

        from robench.threats.monitor import IterateMonitor

        x, y, num_classes, seed = batch.inputs, batch.labels, batch.num_classes, batch.seed
        monitor = IterateMonitor(model, x, y, aligned=self.aligned, early_exit=self.early_exit)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), input_gradients_only(model):
            torch.manual_seed(seed)
            final = x
            for r in range(self.restarts_count()):
                atk = self.make_attack(monitor, num_classes, seed + r)
                try:
                    final = atk(x, y)
                except ValueError as e:  # torchattacks' input-range check
                    raise RobenchError(f"{self.name}: {e}; images must be in [0, 1]") from None
                if self.aligned and bool(monitor.broken.all()):
                    break
        # Kept input: the first iterate that broke the example, else the final one. Its prediction
        # comes from one full-batch forward (under the caller's autocast, if any): for examples not
        # yet broken it checks the final iterate, for the others it re-verifies the kept one.
        adv = torch.where(monitor.broken.view(-1, *([1] * (x.ndim - 1))), monitor.first_adv, final.detach())
        with torch.inference_mode():
            logits = model(adv)
        return Outcome(adv=adv, adv_pred=logits.argmax(-1), queries=monitor.queries, scores=logits)
