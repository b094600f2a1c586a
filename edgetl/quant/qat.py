"""Quantization-aware training through PyTorch's PT2E flow (torchao).

capture (torch.export, eval mode) -> fold BatchNorm into the convolutions -> `prepare_qat_pt2e` with the
TensorRT-rule quantizer -> calibrate activation ranges -> train with the shared Trainer (KD from the float
model) -> `convert_pt2e` -> export.

BatchNorm is folded *before* fake quantization, with its running statistics frozen: the fake-quantized
weights are then exactly the weights both runtimes execute. TensorRT folds BN into Conv itself, so a graph
without BN gives it the same network, and no BN folding is simulated during training (what PT2E's QAT
prepare would otherwise insert). Freezing BN statistics is also the usual advice for short QAT fine-tunes.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)


@dataclass
class Layer:
    """One quantizable layer of a prepared graph: its module path and the fake-quants on its inputs."""

    name: str
    op: str  # conv | linear
    act: str | None  # activation fake-quant module name
    weight: str | None  # weight fake-quant module name


def capture(model: EdgeModel, example: dict[str, torch.Tensor]) -> torch.fx.GraphModule:
    """torch.export of the model in eval mode with dynamic batch (and sequence), BatchNorm folded."""
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    from edgetl.quant.layouts import dynamic_shapes

    module = model.module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(module, (), dict(example),
                                 dynamic_shapes=dynamic_shapes(example, model.task, max_sequence(model)))
    gm = ep.module()
    _fuse_conv_bn_(gm)  # torchao's own conv+BN folding on the exported graph (frozen running stats)
    return gm


def max_sequence(model: EdgeModel) -> int:
    return int(model.preprocessing.max_length or 512)


def prepare(model: EdgeModel, example: dict[str, torch.Tensor], skip: set[str] | frozenset = frozenset()):
    """A fake-quantized GraphModule (train/eval switchable) and the quantizer that annotated it."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    from edgetl.quant.quantizer import TensorRTQuantizer

    gm = capture(model, example)
    quantizer = TensorRTQuantizer(skip=skip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_qat_pt2e(gm, quantizer)
    allow_exported_model_train_eval(prepared)
    prepared.eval()
    return prepared, quantizer


def layers_of(prepared: torch.fx.GraphModule) -> list[Layer]:
    from edgetl.quant.quantizer import CONV_OPS, LINEAR_OPS, module_path

    def fq_name(arg) -> str | None:
        if isinstance(arg, torch.fx.Node) and arg.op == "call_module":
            return str(arg.target)
        return None

    layers = []
    for node in prepared.graph.nodes:
        if node.op == "call_function" and node.target in CONV_OPS | LINEAR_OPS:
            layers.append(Layer(module_path(node) or node.name, "conv" if node.target in CONV_OPS else "linear",
                                fq_name(node.args[0]), fq_name(node.args[1])))
    return layers


def as_edge_model(model: EdgeModel, module: nn.Module) -> EdgeModel:
    """The same model description around another module (the fake-quantized graph), for the Trainer."""
    return dataclasses.replace(model, module=module)


class FloatTeacherKD:
    """Logit KD from the float model (frozen) as an extra Trainer loss: weight * T^2 * KL(teacher || student).
    Uses the distillation package's `kd_kl` so both stages compute KD the same way."""

    def __init__(self, teacher: nn.Module, weight: float = 1.0, temperature: float = 2.0):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.weight = weight
        self.temperature = temperature

    def to(self, device) -> FloatTeacherKD:  # the Trainer moves loss terms with the model
        self.teacher.to(device)
        return self

    def __call__(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        from edgetl.distill.losses import kd_kl

        with torch.no_grad():
            teacher_logits = self.teacher(**inputs)
        return self.weight * kd_kl(logits, teacher_logits, self.temperature)


@torch.no_grad()
def refresh_weight_ranges(prepared: torch.fx.GraphModule, batch: dict[str, torch.Tensor]) -> None:
    """One eval forward so each weight fake-quant holds the ranges of the final weights before convert."""
    from edgetl.quant.calibrate import fake_quants, set_enabled

    acts, weights = fake_quants(prepared)
    set_enabled(acts.values(), observer=False)
    set_enabled(weights.values(), observer=True)
    prepared.eval()
    prepared(**batch)


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_pt2e(prepared)
