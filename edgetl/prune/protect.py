"""Layers a CNN keeps at full width unless the user says otherwise (`prune.protect: auto`).

Pruning the wrong outputs costs far more accuracy than their MACs are worth, and which outputs those are is
a property of the architecture, not of one model: found here on torch-pruning's dependency graph, so it
holds for any CNN a user brings, not just a list of module names.
- the stem: the first convolution reads the image; its few channels carry everything later layers see;
- projections: a 1x1 convolution fed by a depthwise one (MobileNet/EfficientNet inverted residuals) writes
  the narrow residual stream that every later block reads and adds to.
What stays prunable is the expanded width inside each block (expand conv -> depthwise -> projection input),
which holds most of the MACs.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels


def _upstream_weighted(node) -> list[nn.Module]:
    """The nearest Conv/Linear modules feeding `node` (walking back through BN, activations, pads, adds)."""
    found, stack, seen = [], list(node.inputs), set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n.module, (nn.Conv2d, nn.Linear)):
            found.append(n.module)
        else:
            stack.extend(n.inputs)
    return found


def protected_layers(module: nn.Module, example_inputs: dict[str, Any]) -> dict[str, str]:
    """{module name: why} for the stem and the inverted-residual projections of a CNN (empty for others)."""
    import torch_pruning as tp

    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return {}
    was_training = module.training
    module.eval()
    try:
        graph = tp.DependencyGraph().build_dependency(module, example_inputs=example_inputs)
    finally:
        module.train(was_training)
    names = {m: n for n, m in module.named_modules()}
    protected: dict[str, str] = {}
    for conv in convs:
        node = graph.module2node.get(conv)
        if node is None:
            continue
        feeding = _upstream_weighted(node)
        if not feeding:
            protected[names[conv]] = "stem"
        elif conv.groups == 1 and conv.kernel_size == (1, 1) and all(_is_depthwise(m) for m in feeding):
            protected[names[conv]] = "projection"
    return protected
