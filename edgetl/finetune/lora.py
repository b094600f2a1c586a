"""LoRA through peft: low-rank updates on chosen Linear/Conv2d layers, the new head trained in full
(`modules_to_save`), then merged into the base weights before any later stage sees the model.

After `merge_and_unload()` peft leaves the base weights marked frozen; the merged model is handed on as a
plain module whose parameters all require grad again (pruning builds its graph from autograd and would
otherwise silently prune nothing)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

from edgetl.errors import NonFiniteError, StageError
from edgetl.models.arch import head_name, matches
from edgetl.train.finite import nonfinite, over

log = logging.getLogger(__name__)
TRANSFORMER_TARGETS = ["query", "key", "value", "dense"]


def default_targets(module: nn.Module) -> list[str]:
    """Transformers: every attention and feed-forward projection (query/key/value/dense). CNNs: every
    Conv2d with groups == 1 (peft's LoRA Conv2d; depthwise convolutions have too few weights to adapt)."""
    head = head_name(module)
    names = [n for n, m in module.named_modules() if n and n != head]
    if any(n.endswith(".query") for n in names):
        return TRANSFORMER_TARGETS
    convs = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    if convs:
        return convs
    return [n for n, m in module.named_modules() if isinstance(m, nn.Linear) and n != head]


def resolve_targets(module: nn.Module, targets: list[str] | None) -> list[str]:
    """Full names of the layers LoRA goes into (the head is trained in full, never LoRA'd)."""
    wanted = targets or default_targets(module)
    head = head_name(module)
    return [n for n, m in module.named_modules()
            if n and n != head and isinstance(m, (nn.Linear, nn.Conv2d)) and any(matches(n, t) for t in wanted)]


def target_problems(module: nn.Module, targets: list[str] | None) -> list[str]:
    """Messages for target names that match no layer peft can adapt (for `edgetl validate`)."""
    if not targets:
        return []
    head = head_name(module)
    layers = {n: m for n, m in module.named_modules() if n}
    out = []
    for t in targets:
        hits = [n for n in layers if matches(n, t)]
        if not hits:
            out.append(f"{t!r} matches no module")
            continue
        usable = [n for n in hits if n != head and isinstance(layers[n], (nn.Linear, nn.Conv2d))]
        if not usable:
            kinds = sorted({type(layers[n]).__name__ for n in hits})
            out.append(f"{t!r} matches only {', '.join(kinds)} modules; LoRA needs Linear or Conv2d layers")
    return out


def wrap(module: nn.Module, *, rank: int, alpha: float, dropout: float, targets: list[str] | None) -> tuple[nn.Module, dict[str, Any]]:
    """The module wrapped as a PeftModel: base frozen, LoRA matrices and a trainable copy of the head."""
    from peft import LoraConfig, get_peft_model

    names = resolve_targets(module, targets)
    if not names:
        raise StageError("lora: no Linear or Conv2d layer matches the targets", hint="set lora.targets to layer names")
    head = head_name(module)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names,
                        modules_to_save=[head], bias="none")
    peft_model = get_peft_model(module, config)
    info = {"targets": len(names), "target_examples": names[:4], "rank": rank, "alpha": alpha}
    log.info("lora: rank %d on %d layers (%s ...), head %s trained in full", rank, len(names), names[0], head)
    return peft_model, info


def merge(peft_model: nn.Module, check_inputs: list[dict], atol: float) -> tuple[nn.Module, float]:
    """Merge LoRA into the base weights; outputs before and after must agree to `atol` (max abs logit)."""
    import torch

    peft_model.eval()
    with torch.no_grad():
        before = [peft_model(**x).float().numpy() for x in check_inputs]
    merged = peft_model.merge_and_unload()
    merged.requires_grad_(True)
    merged.eval()
    with torch.no_grad():
        after = [merged(**x).float().numpy() for x in check_inputs]
    bad = nonfinite(logits_before_merge=np.concatenate(before), logits_after_merge=np.concatenate(after)) if before else ""
    if bad:  # NaN differences pass a "> atol" check: a diverged LoRA run must not be merged and shipped
        raise NonFiniteError(f"lora merge check: {bad}",
                             hint="LoRA training diverged; lower `lr` or `lora.lr_multiplier` and rerun the stage")
    diff = float(max(np.abs(a - b).max() for a, b in zip(before, after, strict=True))) if before else 0.0
    leftovers = [n for n, _ in merged.named_modules() if "lora_" in n or "modules_to_save" in n]
    if leftovers:
        raise StageError(f"lora merge left peft modules behind: {leftovers[:3]}")
    if over(diff, atol):
        raise StageError(f"lora merge changed the outputs: max abs logit difference {diff:.3g} > {atol:g}",
                         hint="raise lora.merge_atol only if the difference is float noise")
    log.info("lora merged: max abs logit difference before/after merge %.3g", diff)
    return merged, diff
