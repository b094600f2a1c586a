"""The shared Trainer stops on divergence instead of keeping a NaN model as its "best" epoch."""

import math

import numpy as np
import pytest
import torch

from edgetl.data.datasets import load_data
from edgetl.errors import NonFiniteError
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import DataConfig, ModelConfig
from edgetl.train.finite import nonfinite
from edgetl.train.loop import Trainer, TrainSettings, evaluate


@pytest.fixture(scope="module")
def fmnist():
    return load_data(DataConfig(name="fashion_mnist", train_limit=128, eval_limit=64))


@pytest.fixture
def tiny_cnn(fmnist):
    return load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", fmnist.label_names)


def test_an_absurd_learning_rate_stops_training_naming_epoch_and_step(tiny_cnn, fmnist):
    settings = TrainSettings(epochs=2, batch_size=32, lr=1e9, warmup_ratio=0.0)

    with pytest.raises(NonFiniteError, match=r"finetune: training diverged at epoch 1, step \d+: ") as err:
        Trainer(tiny_cnn, fmnist.train, fmnist.eval, settings, description="finetune").fit()

    assert "learning rate" in err.value.hint


def test_a_nan_loss_stops_training_at_its_step_without_clipping(tiny_cnn, fmnist):
    with torch.no_grad():
        tiny_cnn.module.head.bias.fill_(math.nan)
    settings = TrainSettings(epochs=1, batch_size=32, lr=1e-3, grad_clip=None)

    with pytest.raises(NonFiniteError, match="epoch 1, step 1: the loss is nan"):
        Trainer(tiny_cnn, fmnist.train, fmnist.eval, settings, description="finetune").fit()


def test_accuracy_of_a_model_with_nan_outputs_is_an_error_not_a_number(tiny_cnn, fmnist):
    with torch.no_grad():
        tiny_cnn.module.head.weight.fill_(math.nan)

    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        evaluate(tiny_cnn, fmnist.eval)  # argmax would call every example class 0


def test_nonfinite_names_the_arrays_that_hold_nan_or_inf():
    ok, bad = np.zeros((2, 3), np.float32), np.array([[0.0, np.inf], [np.nan, 1.0]])

    assert nonfinite(a=ok, labels=np.arange(3)) == ""
    assert nonfinite(torch_logits=ok, onnx_logits=bad) == "onnx logits: 2 of 4 values NaN or infinite"
