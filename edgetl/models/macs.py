"""Multiply-accumulate counts of a model at its deployed input shape (batch 1).

torch-pruning's counter (`tp.utils.count_ops_and_params`) when it is installed; otherwise a forward-hook
counter over Conv/Linear layers (the layers that carry nearly all MACs of the models edgetl makes).
Also fills `info["macs"]` of every artifact a stage produces, so report.json has MACs on each of them.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from edgetl.models.base import EdgeModel
    from edgetl.pipeline.artifacts import Artifact
    from edgetl.stages.base import StageContext

log = logging.getLogger(__name__)


def _hook_count(module: nn.Module, example_inputs: dict[str, Any]) -> tuple[int, int]:
    import torch
    from torch import nn

    total = [0]

    def conv_hook(m: nn.Conv2d, _inp, out):
        k = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]  # (in / groups) * kh * kw
        total[0] += int(out.numel() // out.shape[0] * k)

    def linear_hook(m: nn.Linear, _inp, out):
        total[0] += int(out.numel() // out.shape[0] * m.in_features)

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            module(**example_inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0], sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, example_inputs: dict[str, Any]) -> tuple[int, int]:
    """(MACs, parameters) of one forward pass on `example_inputs` (use batch 1)."""
    was_training = module.training
    module.eval()
    try:
        if importlib.util.find_spec("torch_pruning") is not None:
            import contextlib
            import io

            import torch_pruning as tp

            with contextlib.redirect_stdout(io.StringIO()):  # it prints "No positional inputs found" for kwargs
                macs, params = tp.utils.count_ops_and_params(module, example_inputs)
            return int(macs), int(params)
        return _hook_count(module, example_inputs)
    finally:
        module.train(was_training)


def model_macs(model: EdgeModel) -> tuple[int, int]:
    """MACs and parameters of an EdgeModel at batch 1 and its preprocessing's input size / max_length."""
    return count_macs(model.module, model.example_inputs(batch=1))


def fill_artifact_macs(ctx: StageContext, produced: list[Artifact]) -> None:
    """Give every produced artifact `info["macs"]`: copied from its parent when the structure is the same
    (ONNX exported or quantized from it), counted on the saved model for a PyTorch artifact otherwise.
    Never fails a stage: a model that cannot be counted keeps no `macs` (logged)."""
    from edgetl.models.base import load_model

    known = {a.name: a for a in ctx.artifacts.values()}
    for art in produced:
        known[art.name] = art
    for art in produced:
        if "macs" in art.info:
            continue
        try:
            parent = known.get(art.parent) if art.parent else None
            if art.format != "pytorch" and parent is not None and "macs" in parent.info:
                art.info["macs"] = parent.info["macs"]
                continue
            if art.format == "pytorch":
                rel = art.path[len(ctx.final_rel) + 1:] if art.path.startswith(ctx.final_rel + "/") else art.path
                model = load_model(ctx.work_dir / rel)
            elif art.parent is None:
                model, _ = ctx.current_model()
            else:
                continue
            art.info["macs"], params = model_macs(model)
            art.info.setdefault("params", params)
        except Exception as exc:  # noqa: BLE001 - MACs are a report fact; never fail the stage over them
            log.debug("could not count MACs of %s: %s", art.name, exc)
