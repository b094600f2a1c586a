"""Small recipes for tests: real data subsets, tiny models, a run in seconds."""

from __future__ import annotations

import copy
from typing import Any

TINY_VISION: dict[str, Any] = {
    "name": "tiny-vision",
    "seed": 0,
    "model": {"source": "tiny_cnn", "input_size": 32},
    "data": {"name": "fashion_mnist", "train_limit": 1000, "eval_limit": 300},
    "stages": [
        {"type": "finetune", "epochs": 4, "batch_size": 64, "lr": 0.02},
        {"type": "export"},
        {"type": "quantize", "samples": 64},
        {"type": "benchmark", "iterations": 30, "warmup_seconds": 0.05},
    ],
}

TINY_TEXT: dict[str, Any] = {
    "name": "tiny-text",
    "seed": 0,
    "model": {"source": "tiny_bert", "max_length": 32},
    "data": {"name": "rotten_tomatoes", "train_limit": 400, "eval_limit": 200},
    "stages": [
        {"type": "finetune", "epochs": 1, "batch_size": 32, "lr": 0.001},
        {"type": "export"},
        {"type": "quantize", "samples": 32},
        {"type": "benchmark", "iterations": 20, "warmup_seconds": 0.05},
    ],
}


def tiny_vision_recipe(**overrides: Any) -> dict[str, Any]:
    recipe = copy.deepcopy(TINY_VISION)
    recipe.update(overrides)
    return recipe


def tiny_text_recipe(**overrides: Any) -> dict[str, Any]:
    recipe = copy.deepcopy(TINY_TEXT)
    recipe.update(overrides)
    return recipe
