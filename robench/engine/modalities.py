"""What differs between the tasks whose models robench attacks, asked of one object per task.

The runner (:mod:`robench.engine.runner`) is the same for every modality; a :class:`Modality`
says how a batch of a dataset's examples reaches the model (images are decoded by the
:class:`~robench.data.loader.Feed`'s worker processes, texts are sliced as they are), whether a
threat may compute under autocast, and how adversarial inputs are scored again in fp32.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from robench.data.base import IMAGE, TEXT, Dataset
from robench.data.loader import Feed
from robench.data.preprocess import from_contract
from robench.errors import RobenchError
from robench.models.loading import LoadedModel

Inputs = tuple[torch.Tensor | list[str], torch.Tensor]  # (images or texts, labels) of one batch


class Modality:
    """The inputs of one task's models; :data:`MODALITIES` holds one per task."""

    name: str  # the ``modality`` of the threats that attack such models
    autocast: bool  # whether ``--amp`` may run the threat's forward passes under autocast

    def batches(self, model: LoadedModel, ds: Dataset, plan: Sequence[Sequence[int]], feed: Feed | None) -> Iterator[Inputs]:
        """The inputs and labels at each list of positions of ``plan``, in order."""
        raise NotImplementedError

    def score(self, module: torch.nn.Module, adv: torch.Tensor | list[str]) -> torch.Tensor:
        """fp32 scores of adversarial inputs (the check of a threat computed under autocast)."""
        raise NotImplementedError


class Images(Modality):
    name, autocast = "image", True

    def batches(self, model, ds, plan, feed):
        feed = feed or Feed(from_contract(model.card.preprocessing), model.device)
        for batch in feed.batches(ds, plan):  # decoded ahead by the workers while the previous batch is attacked
            if batch.failed:  # readable in the clean pass, unreadable now: the run cannot stay paired
                _, where, reason = batch.failed[0]
                raise RobenchError(f"image {where} became unreadable during the run ({reason}); restore it and rerun")
            yield batch.x, batch.y

    def score(self, module, adv):
        with torch.inference_mode():
            return module(adv)


class Texts(Modality):
    name, autocast = "text", False  # text attacks keep fp32 (their inputs are token ids)

    def batches(self, model, ds, plan, feed):
        for pos in plan:
            yield [ds.inputs[p] for p in pos], ds.targets[torch.as_tensor(list(pos), dtype=torch.long)]

    def score(self, module, adv):
        from robench.threats.text.base import text_probs

        return text_probs(module, adv)


MODALITIES: dict[str, Modality] = {IMAGE: Images(), TEXT: Texts()}  # card task -> the inputs of its models


def modality_for(model: LoadedModel) -> Modality:
    """The modality of ``model``'s task (language models are not attacked here: :mod:`robench.lm.perplexity`)."""
    if model.task not in MODALITIES:
        raise RobenchError(f"model {model.name} is a {model.task} model; threats attack {' and '.join(MODALITIES)} models")
    return MODALITIES[model.task]
