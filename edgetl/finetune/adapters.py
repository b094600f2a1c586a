"""The `adapter` fine-tuning method: where bottleneck adapters go and the injection spec stored in the
model's builder. The adapter layers themselves (and re-injecting them when a saved model loads) are in
`edgetl.models.adapters`.

Why written here: peft 0.21 has no bottleneck adapters, and AdapterHub's `adapters` 1.3 pins
transformers 4.57, so it cannot install beside transformers 5.x (re-check when it catches up).

Placement for BERT-style encoders: Houlsby puts one adapter after the attention output projection and one
after the feed-forward output projection of every layer (before the residual LayerNorm); Pfeiffer only
after the feed-forward one. CNNs: one 1x1 adapter after the last full (groups == 1) convolution of every
block, before its BatchNorm.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from torch import nn

from edgetl.errors import ModelError
from edgetl.models.arch import block_container, head_name, matches

log = logging.getLogger(__name__)


def default_targets(module: nn.Module, style: str) -> list[str]:
    names = [n for n, _ in module.named_modules() if n]
    if any(n.endswith(".attention.output.dense") for n in names):  # BERT family
        ffn = [n for n in names if re.search(r"\.layer\.\d+\.output\.dense$", n)]
        attn = [n for n in names if n.endswith(".attention.output.dense")]
        return sorted(attn + ffn, key=names.index) if style == "houlsby" else ffn
    found = block_container(module)
    blocks = found[1] if found else [k for k, c in module.named_children() if any(True for _ in c.parameters())]
    head = head_name(module)
    out = []
    for b in blocks:
        convs = [n for n, m in module.get_submodule(b).named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
        if convs and b != head:
            out.append(f"{b}.{convs[-1]}" if convs[-1] else b)
    return out


def resolve_targets(module: nn.Module, style: str, targets: list[str] | None) -> list[str]:
    if not targets:
        names = default_targets(module, style)
        if not names:
            raise ModelError(f"no default adapter placement for {type(module).__name__}",
                             hint="set adapter.targets to the Linear/Conv2d layers after which adapters go")
        return names
    head = head_name(module)
    return [n for n, m in module.named_modules()
            if n and n != head and type(m) in (nn.Linear, nn.Conv2d) and any(matches(n, t) for t in targets)]


def target_problems(module: nn.Module, targets: list[str] | None) -> list[str]:
    if not targets:
        return []
    layers = {n: m for n, m in module.named_modules() if n}
    out = []
    for t in targets:
        hits = [n for n in layers if matches(n, t)]
        if not hits:
            out.append(f"{t!r} matches no module")
        elif not any(type(layers[n]) in (nn.Linear, nn.Conv2d) for n in hits):
            kinds = sorted({type(layers[n]).__name__ for n in hits})
            out.append(f"{t!r} matches only {', '.join(kinds)} modules; adapters go after Linear or Conv2d layers")
    return out


def plan(module: nn.Module, *, style: str, reduction: int, activation: str, targets: list[str] | None) -> dict[str, Any]:
    """The injection spec stored in builder["adapters"]: {name: {kind, dim, size, activation}}."""
    spec: dict[str, Any] = {}
    for name in resolve_targets(module, style, targets):
        m = module.get_submodule(name)
        kind, dim = ("conv", m.out_channels) if isinstance(m, nn.Conv2d) else ("linear", m.out_features)
        spec[name] = {"kind": kind, "dim": int(dim), "size": max(1, int(dim) // reduction), "activation": activation}
    if not spec:
        raise ModelError("adapter.targets match no Linear or Conv2d layer")
    return {"style": style, "layers": spec}
