"""The LoRA merge check fails on NaN: a diverged LoRA run is never merged and handed on."""

import math

import pytest
import torch

from edgetl.errors import NonFiniteError
from edgetl.finetune import lora
from edgetl.models.base import to_torch


def test_merge_of_nan_lora_weights_is_refused(tiny_cnn, fmnist):
    peft_model, _ = lora.wrap(tiny_cnn.module, rank=4, alpha=8, dropout=0.0, targets=None)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.fill_(math.nan)
    checks = [to_torch(tiny_cnn.encoder()(fmnist.eval.inputs[:8]))]

    with pytest.raises(NonFiniteError, match="logits before merge: 80 of 80 values NaN"):
        lora.merge(peft_model, checks, atol=1e-4)
