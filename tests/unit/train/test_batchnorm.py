"""BatchNorm statistics after training describe the trained weights on the training data, even for a
checkpoint whose BatchNorm momentum is TensorFlow's slow 0.01 (EfficientNet-Lite)."""

from __future__ import annotations

import torch
from torch import nn

from edgetl.data.datasets import load_data
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import DataConfig, ModelConfig
from edgetl.train.loop import Trainer, TrainSettings, evaluate


def _stem_stats(model, split) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the stem conv's output over the whole split (what its BatchNorm should hold)."""
    from edgetl.models.base import to_torch

    conv = model.module.stem[0]
    with torch.no_grad():
        x = conv(to_torch(model.encoder()(split.inputs))["pixel_values"])
    return x.mean((0, 2, 3)), x.var((0, 2, 3))


def test_slow_momentum_checkpoint_ends_with_statistics_of_its_training_data():
    data = load_data(DataConfig(name="fashion_mnist", train_limit=256, eval_limit=128))
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32, pretrained=False), "image", data.label_names)
    norms = [m for m in model.module.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 0.01  # TensorFlow's decay 0.99, as EfficientNet-Lite's checkpoint sets it
        m.running_mean.fill_(5.0)  # statistics of another domain
        m.running_var.fill_(9.0)

    Trainer(model, data.train, data.eval, TrainSettings(epochs=3, batch_size=64, lr=0.02, seed=0)).fit()

    mean, var = _stem_stats(model, data.train)
    stem_bn = model.module.stem[1]
    assert torch.allclose(stem_bn.running_mean, mean, atol=0.05 * float(var.sqrt().mean()))
    assert torch.allclose(stem_bn.running_var, var, rtol=0.25)
    assert evaluate(model, data.eval) > 0.2  # the stale statistics of another domain leave it near chance (0.1)


def test_frozen_batchnorm_keeps_its_statistics():
    from edgetl.finetune.layerwise import train_mode

    data = load_data(DataConfig(name="fashion_mnist", train_limit=128, eval_limit=64))
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32, pretrained=False), "image", data.label_names)
    before = {k: v.clone() for k, v in model.module.state_dict().items() if "running" in k}

    Trainer(model, data.train, data.eval, TrainSettings(epochs=1, batch_size=64, seed=0),
            train_mode=train_mode("freeze")).fit()

    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
