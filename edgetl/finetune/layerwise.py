"""Layer-wise control of full fine-tuning: discriminative learning rates (a decay per depth group, or
explicit rates by module name), gradual unfreezing (head first, deeper groups on an epoch schedule,
ULMFiT-style), and the BatchNorm policy (`freeze`: eval-mode BN keeps the source statistics)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from edgetl.models.arch import DepthGroups, matches

log = logging.getLogger(__name__)
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def param_groups(module: nn.Module, groups: DepthGroups, lr: float, *, decay: float | None = None,
                 explicit: dict[str, float] | None = None, params: set[int] | None = None) -> list[dict[str, Any]]:
    """AdamW parameter groups. Group depth d counted from the top (d=0 holds the head) gets lr * decay**d;
    a parameter inside a module named in `explicit` (full name or dotted suffix) gets that rate instead.
    `params` (ids) restricts the groups to those parameters; every parameter is listed even when frozen
    now, so gradual unfreezing needs no new optimizer."""
    explicit = explicit or {}
    by_lr: dict[float, list[nn.Parameter]] = {}
    names: dict[float, list[str]] = {}
    top = len(groups) - 1
    for name, p in module.named_parameters():
        if params is not None and id(p) not in params:
            continue
        rate = lr
        if decay is not None:
            try:
                rate = lr * decay ** (top - groups.group_of(name))
            except KeyError:  # a parameter added after the groups were made (adapter, LoRA): top rate
                rate = lr
        parts = name.split(".")[:-1]
        owners = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # every enclosing module
        for target, value in explicit.items():
            if any(matches(owner, target) for owner in owners):
                rate = value
        by_lr.setdefault(rate, []).append(p)
        names.setdefault(rate, []).append(name)
    for rate in sorted(by_lr):
        log.debug("lr %.3g: %d tensors (%s ...)", rate, len(by_lr[rate]), names[rate][0])
    return [{"params": ps, "lr": rate} for rate, ps in sorted(by_lr.items(), reverse=True)]


def unknown_module_targets(module: nn.Module, targets: list[str]) -> list[str]:
    names = [n for n, _ in module.named_modules() if n]
    return [t for t in targets if not any(matches(n, t) or n.startswith(t + ".") for n in names)]


class GradualUnfreezer:
    """`schedule[k]` is the epoch (0-based) at which the k-th group from the top starts to train; groups
    below the last listed one unfreeze with it. [0, 1, 2] = head from the start, the top block after one
    epoch, everything else after two."""

    def __init__(self, module: nn.Module, groups: DepthGroups, schedule: list[int]):
        self.module = module
        self.groups = groups
        self.schedule = schedule
        top = len(groups) - 1
        self.start_epoch: dict[str, int] = {}
        for g in range(len(groups)):
            depth = top - g
            epoch = schedule[min(depth, len(schedule) - 1)]
            for name in groups.members[g]:
                self.start_epoch[name] = epoch

    def __call__(self, epoch: int) -> None:
        trainable = 0
        for name, p in self.module.named_parameters():
            on = self.start_epoch.get(name, 0) <= epoch
            p.requires_grad_(on)
            trainable += p.numel() if on else 0
        log.info("gradual unfreezing, epoch %d: %d trainable parameters", epoch + 1, trainable)


def train_mode(batchnorm: str) -> Callable[[nn.Module], None]:
    """Put the module in training mode, keeping BatchNorm layers in eval mode when the policy is
    `freeze` or when all their parameters are frozen (so frozen stays frozen, buffers included)."""

    def apply(module: nn.Module) -> None:
        module.train()
        for m in module.modules():
            if isinstance(m, NORM_TYPES):
                frozen = not any(p.requires_grad for p in m.parameters(recurse=False))
                if batchnorm == "freeze" or frozen:
                    m.eval()

    return apply


def freeze_except(module: nn.Module, keep: Callable[[str], bool]) -> None:
    for name, p in module.named_parameters():
        p.requires_grad_(bool(keep(name)))
