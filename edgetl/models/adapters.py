"""Bottleneck adapter layers: down-project, non-linearity, up-project, residual (Houlsby et al. 2019;
Pfeiffer et al. 2021), and residual 1x1 adapters for CNNs (Rebuffi et al. 2017).

An adapter is injected by name: the target Linear/Conv2d is replaced by a subclass that keeps the same
weight and bias (so parameter names, checkpoints and pruning of the base are unchanged) and adds an
`adapter` child applied to its output. The up-projection starts at zero, so an injected model computes
exactly what it did before. The injection is recorded in the model's builder (`builder["adapters"]`), and
`models.zoo.build` re-injects it before weights load, so saved models round-trip. Adapters stay in the
graph and export to ONNX as ordinary MatMul/Conv nodes. Where adapters go (and training them) is the
`adapter` method of `edgetl.finetune` (finetune/adapters.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgetl.errors import ModelError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class Bottleneck(nn.Module):
    """x + up(act(down(x))) over the last dim (Linear) or over channels (1x1 Conv2d)."""

    def __init__(self, dim: int, size: int, kind: str = "linear", activation: str = "relu"):
        super().__init__()
        if kind == "conv":
            self.down: nn.Module = nn.Conv2d(dim, size, 1)
            self.up: nn.Module = nn.Conv2d(size, dim, 1)
        else:
            self.down = nn.Linear(dim, size)
            self.up = nn.Linear(size, dim)
        self.act = ACTIVATIONS[activation]()
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class AdapterLinear(nn.Linear):
    adapter: Bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(super().forward(x))


class AdapterConv2d(nn.Conv2d):
    adapter: Bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(super().forward(x))


def inject(module: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Replace each named layer by its adapter subclass, sharing the original weight and bias."""
    for name, s in spec["layers"].items():
        parent_name, _, leaf = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        old = getattr(parent, leaf)
        if isinstance(old, (AdapterLinear, AdapterConv2d)):
            continue
        new = _adapted(old)
        new.adapter = Bottleneck(int(s["dim"]), int(s["size"]), s["kind"], s.get("activation", "relu"))
        new.adapter.to(device=old.weight.device, dtype=old.weight.dtype)
        setattr(parent, leaf, new)
    return module


def _adapted(old: nn.Module) -> nn.Module:
    if type(old) is nn.Linear:
        new = AdapterLinear.__new__(AdapterLinear)
    elif type(old) is nn.Conv2d:
        new = AdapterConv2d.__new__(AdapterConv2d)
    else:
        raise ModelError(f"cannot put an adapter after a {type(old).__name__}; expected Linear or Conv2d")
    new.__dict__.update(old.__dict__)  # same parameters, hooks and attributes; no copy
    new._modules = dict(old._modules)
    new._parameters = dict(old._parameters)
    new._buffers = dict(old._buffers)
    return new
