"""BatchNorm statistics that describe the weights being evaluated.

A fine-tune of a few hundred steps moves the weights far from the checkpoint, but a BatchNorm's running
statistics follow only as fast as its momentum lets them. Checkpoints ported from TensorFlow (EfficientNet-Lite:
decay 0.99, i.e. torch momentum 0.01) keep almost all of the source domain's statistics after such a run, and
eval-mode accuracy collapses while train-mode accuracy is fine. Two remedies, applied by the Trainer to every
BatchNorm layer that trains: a momentum floor while training, and statistics re-estimated on training batches
before each evaluation ("precise BN", Wu & Johnson 2021), so the epoch picked as best is judged fairly.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

MIN_MOMENTUM = 0.1  # PyTorch's default; what torchvision's MobileNetV2 trains with
PRECISE_BN_BATCHES = 10


def training_batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers in training mode (their running statistics update on each forward pass)."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]


def raise_momentum(layers: list[nn.modules.batchnorm._BatchNorm], floor: float = MIN_MOMENTUM) -> int:
    """Give layers whose momentum is below `floor` (or None: a cumulative average that barely moves after
    pre-training's many batches) the floor. Returns how many changed."""
    changed = 0
    for m in layers:
        if m.momentum is None or m.momentum < floor:
            m.momentum = floor
            changed += 1
    return changed


@torch.no_grad()
def reestimate_batchnorm(model, split, batches: int, batch_size: int, seed: int = 0,
                         layers: list[nn.modules.batchnorm._BatchNorm] | None = None) -> int:
    """Re-estimate running statistics of `layers` (default: every BatchNorm) as the cumulative average over
    `batches` training batches, with the current weights. Returns the number of layers updated."""
    from edgetl.data.datasets import iter_batches
    from edgetl.models.base import to_torch

    module = model.module
    if layers is None:
        layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers or batches <= 0:
        return 0
    modes = {m: m.training for m in module.modules()}
    saved = [(m, m.momentum) for m in layers]
    module.eval()  # dropout and everything else in eval mode; only the chosen BatchNorms collect statistics
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    encode = model.encoder()
    try:
        for i, (raw, _labels) in enumerate(iter_batches(split, batch_size, shuffle=True, seed=seed)):
            if i >= batches:
                break
            module(**{k: v.to(device) for k, v in to_torch(encode(raw)).items()})
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    return len(layers)
