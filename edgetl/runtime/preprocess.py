"""Input preprocessing shared by training, export, benchmarking and deployed bundles.

numpy (and `tokenizers` for text) only, never torch: the same code turns raw images or strings into model
inputs in the training loop and inside an app that embeds a bundle, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    """How raw inputs become model inputs. Stored in every model artifact and bundle manifest."""

    kind: str  # "image" or "text"
    input_names: list[str]
    # image
    size: int | None = None
    channels: int = 3
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    resize: str = "bilinear"
    # text
    max_length: int | None = None
    tokenizer_file: str | None = None  # file name relative to the model folder / bundle
    lowercase_hint: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(**data)

    def example_shape(self, batch: int = 1) -> tuple[int, ...]:
        if self.kind == "image":
            assert self.size is not None
            return (batch, self.channels, self.size, self.size)
        return (batch, int(self.max_length or 128))


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Same sampling as torch's F.interpolate(mode="bilinear", align_corners=False, antialias=False).
    scale = n_in / n_out
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.clip(src, 0, None)
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, C) float32 -> (N, size, size, C), vectorised over the batch."""
    n, h, w, c = images.shape
    if h == size and w == size:
        return images
    r0, r1, rw = _axis_weights(h, size)
    rows = images[:, r0] * (1 - rw)[None, :, None, None] + images[:, r1] * rw[None, :, None, None]
    c0, c1, cw = _axis_weights(w, size)
    return rows[:, :, c0] * (1 - cw)[None, None, :, None] + rows[:, :, c1] * cw[None, None, :, None]


def encode_images(images: np.ndarray, pre: Preprocessing) -> dict[str, np.ndarray]:
    """uint8 images (N,H,W) grey or (N,H,W,C) -> {input_name: float32 NCHW}, normalised."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"expected images shaped (N,H,W) or (N,H,W,C), got {x.shape}")
    x = x.astype(np.float32) / 255.0
    if x.shape[-1] == 1 and pre.channels == 3:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 4 and pre.channels == 3:
        x = x[..., :3]
    elif x.shape[-1] == 3 and pre.channels == 1:
        x = x.mean(axis=-1, keepdims=True)
    assert pre.size is not None
    x = resize_bilinear(x, pre.size)
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    x = (x - mean) / std
    return {pre.input_names[0]: np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)}


class TextEncoder:
    """A `tokenizers` fast tokenizer set up from the model's tokenizer.json (no transformers, no torch)."""

    def __init__(self, tokenizer: str | Path | bytes, pre: Preprocessing):
        """tokenizer: the path of tokenizer.json, or its bytes (already checked, as a bundle hands them out)."""
        from tokenizers import Tokenizer

        self.pre = pre
        if isinstance(tokenizer, bytes):
            self.tokenizer = Tokenizer.from_str(tokenizer.decode("utf-8"))
        else:
            self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.max_length = int(pre.max_length or 128)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")

    def __call__(self, texts: list[str], pad_to_max: bool = False) -> dict[str, np.ndarray]:
        if pad_to_max:
            self.tokenizer.enable_padding(
                pad_id=self.tokenizer.padding["pad_id"], pad_token="[PAD]", length=self.max_length
            )
        try:
            encodings = self.tokenizer.encode_batch(list(texts))
        finally:
            if pad_to_max:
                self.tokenizer.enable_padding(pad_id=self.tokenizer.padding["pad_id"], pad_token="[PAD]")
        out = {
            "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: out[name] for name in self.pre.input_names}


def latency_feed(encode: Callable[..., dict[str, np.ndarray]], raw: Any, task: str) -> dict[str, np.ndarray]:
    """The input a latency measurement times: `raw` (e.g. one example, `inputs[:1]`) encoded by `encode`; text
    padded to max_length tokens, the deployed worst case (a short sentence would hide what a layer costs)."""
    return encode(raw, pad_to_max=True) if task == "text" else encode(raw)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
