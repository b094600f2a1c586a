"""AdaBN (Li et al., arXiv:1603.04779): keep every weight, re-estimate each BatchNorm layer's statistics on
target data. No labels, no training."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(module: nn.Module) -> dict[str, _BatchNorm]:
    return {n: m for n, m in module.named_modules() if isinstance(m, _BatchNorm) and m.track_running_stats}


def _running(m: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(running_mean, running_var, num_batches_tracked): present on every layer batchnorm_layers() returns."""
    mean, var, count = m.running_mean, m.running_var, m.num_batches_tracked
    if mean is None or var is None or count is None:
        raise ValueError(f"{type(m).__name__} keeps no running statistics")
    return mean, var, count


@torch.no_grad()
def adabn(module: nn.Module, batches: Iterable[dict[str, torch.Tensor] | torch.Tensor]) -> dict[str, Any]:
    """Set every BatchNorm layer's running mean and variance to the statistics of its input over `batches`
    (dicts of keyword inputs, or tensors passed positionally).

    The pass runs in eval mode (no dropout) with the BatchNorm layers in train mode, so each layer normalises
    each batch with its own statistics, as in the paper. The statistics are pooled over all batches (per-channel
    sum and sum of squares), so the variance is that of the whole target sample: PyTorch's cumulative average
    (momentum=None) would give the mean of the per-batch variances, which misses the spread between batches.
    Returns the number of layers and examples and the mean absolute change of the running means."""
    layers = batchnorm_layers(module)
    acc: dict[str, list[Any]] = {n: [0, 0.0, 0.0] for n in layers}

    def hook_for(name: str):
        def hook(m: nn.Module, args) -> None:
            x = args[0].detach().double()
            dims = [d for d in range(x.dim()) if d != 1]
            a = acc[name]
            a[0] += x.numel() // x.shape[1]
            a[1] = a[1] + x.sum(dims)
            a[2] = a[2] + (x * x).sum(dims)
        return hook

    modes = {n: m.training for n, m in module.named_modules()}
    saved = {n: tuple(t.clone() for t in _running(m)) for n, m in layers.items()}
    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in layers.items()]
    examples = 0
    try:
        module.eval()
        for m in layers.values():
            m.train()
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        for batch in batches:
            if isinstance(batch, dict):
                batch = {k: v.to(device) for k, v in batch.items()}
                examples += len(next(iter(batch.values())))
                module(**batch)
            else:
                examples += len(batch)
                module(batch.to(device))
    finally:
        for h in handles:
            h.remove()
        for n, m in module.named_modules():
            m.train(modes.get(n, m.training))
    shift = 0.0
    for n, m in layers.items():
        running = _running(m)
        count, total, squares = acc[n]
        if count < 2:  # no data reached this layer: keep what it had (the train-mode pass changed it)
            for now, kept in zip(running, saved[n], strict=True):
                now.copy_(kept)
            continue
        mean = total / count
        var = (squares - count * mean * mean) / (count - 1)
        running[0].copy_(mean.to(running[0].dtype))
        running[1].copy_(var.clamp_min(0).to(running[1].dtype))
        shift += float((running[0] - saved[n][0]).abs().mean())
    return {"batchnorm_layers": len(layers), "examples": examples,
            "mean_abs_running_mean_change": round(shift / max(len(layers), 1), 6)}
