"""The robench network inside a loaded model and its hidden states, layer by layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robench.data.base import IMAGE, LM as LM_TASK
from robench.errors import RobenchError
from robench.models.loading import LoadedModel


def robench_net(model: LoadedModel) -> nn.Module:
    """The robench network inside a loaded model, or a one-line error for anything else."""
    from robench.models.lm import RobenchLM
    from robench.models.text import RobenchTextClassifier
    from robench.models.vit import RobenchViT

    net = getattr(model.module, "net", None)
    if not isinstance(net, (RobenchViT, RobenchTextClassifier, RobenchLM)):
        raise RobenchError(f"{model.name}: diagnose needs a robench architecture (a zoo name or a robench "
                           "checkpoint); timm:/hf: models are not supported")
    return net


@torch.inference_mode()
def hidden_states(model: LoadedModel, inputs: Tensor) -> tuple[list[Tensor], Tensor | None]:
    """``[Y_0, block 1 output, ...]`` (each ``(B, N, D)``) for raw inputs, and the valid-token mask.

    Images are in [0, 1] (normalised here with the card's mean/std, as the wrapper does); text is
    token ids. The mask is None for images and language-model windows (every token is real), ``(B, N)``
    (CLS + non-pad tokens) for text.
    """
    net = robench_net(model)
    inputs = inputs.to(model.device)
    if model.task == LM_TASK:
        return net.forward_features(inputs, return_hidden=True)[1], None
    if model.task == IMAGE:
        wrapper = model.module
        _, hidden = net.forward_features((inputs - wrapper.mean) / wrapper.std, return_hidden=True)
        return hidden, None
    ids = inputs[:, : net.cfg.max_length]
    _, hidden = net.forward_features(ids, return_hidden=True)
    mask = torch.cat([torch.ones_like(ids[:, :1], dtype=torch.bool), ids != net.pad_id], dim=1)
    return hidden, mask


def load_robench_model(spec: str | LoadedModel, device: torch.device) -> LoadedModel:
    """A MODEL argument loaded on ``device`` (a loaded model as given), refused unless it is a robench architecture."""
    from robench.models.loading import load_model

    if isinstance(spec, LoadedModel):
        model = spec
    else:
        if str(spec).startswith(("timm:", "hf:")):
            raise RobenchError(f"{spec}: diagnose needs a robench architecture (a zoo name or a robench "
                               "checkpoint); timm:/hf: models are not supported")
        model = load_model(spec, device)
    robench_net(model)
    return model
