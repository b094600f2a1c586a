"""Multiply-accumulate counts of a model at its deployed input shape (batch 1).

MACs here are the multiply-accumulates of convolutions and matrix products (Conv, MatMul, Gemm and
attention), the same definition `edgetl bench` applies to an ONNX file (`bench/model_stats.py`), so a
model and its export report the same number. Counted at the ATen level with torch's FlopCounterMode:
module-hook counters (torch-pruning's included) miss layers that subclass nn.Conv2d and call F.conv2d
themselves, such as EfficientNet-Lite's same-padding convolutions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from edgetl.models.base import EdgeModel


def _flop_mapping() -> dict[Any, Any]:
    """FlopCounterMode's table plus the CPU attention kernel it lacks (two batched matmuls: QK^T and AV)."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)  # the counter passes shapes, not tensors

    mapping: dict[Any, Any] = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = cpu_sdpa
    return mapping


def count_macs(module: nn.Module, example_inputs: dict[str, Any]) -> tuple[int, int]:
    """(MACs, parameters) of one forward pass on `example_inputs` (use batch 1), in eval mode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as counter, torch.no_grad():
            module(**example_inputs)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops()) // 2, sum(p.numel() for p in module.parameters())


def model_macs(model: EdgeModel) -> tuple[int, int]:
    """MACs and parameters of an EdgeModel at batch 1 and its preprocessing's input size / max_length."""
    return count_macs(model.module, model.example_inputs(batch=1))
