"""Frozen features of a model on raw inputs: the input of its classification head (the penultimate layer),
and the source classifier's probabilities on those same features when a source head is given."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgetl.errors import ModelError
from edgetl.models.base import EdgeModel, to_torch


@dataclass
class Features:
    features: np.ndarray  # [N, D] float64
    source_probs: np.ndarray | None  # [N, C_source] softmax of the source head, or None
    seconds: float  # wall time of the forward passes


@torch.no_grad()
def extract_features(model: EdgeModel, batches: Iterable, source_head: nn.Module | None = None) -> Features:
    """Run `model` in eval mode over `batches` of raw inputs (uint8 images or strings) and keep what its last
    nn.Linear receives. BatchNorm uses its pretrained statistics and dropout is off, as in the paper setups."""
    from edgetl.models.arch import head_name

    module = model.module.eval()
    head = module.get_submodule(head_name(module))
    encode = model.encoder()
    seen: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach().flatten(1).float()))
    start = time.perf_counter()
    try:
        for raw in batches:
            module(**to_torch(encode(raw)))
    finally:
        handle.remove()
    if not seen:
        raise ModelError(f"{model.source}: no inputs reached the head (the sample is empty)")
    feats = torch.cat(seen)
    probs = None
    if source_head is not None:
        expected = getattr(source_head, "in_features", feats.shape[1])
        if expected != feats.shape[1]:
            raise ModelError(f"{model.source}: the source head reads {expected} features but the model's head "
                             f"receives {feats.shape[1]}")
        probs = torch.softmax(source_head.eval()(feats).double(), dim=1).numpy()
    seconds = time.perf_counter() - start
    return Features(feats.double().numpy(), probs, seconds)
