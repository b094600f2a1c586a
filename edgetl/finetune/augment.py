"""Basic image augmentation on raw uint8 batches (N, H, W[, C]), before the model's preprocessing:
horizontal flip, random crop (reflect padding of 1/8 of the side, then crop back) and colour jitter
(brightness and contrast, +-20 %). Text gets none."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

KINDS = ("flip", "crop", "color_jitter")


def make_augment(kinds: Sequence[str]) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
    kinds = list(kinds)
    if not kinds:
        return None

    def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(images, copy=True)
        n, h, w = x.shape[:3]
        if "flip" in kinds:
            flip = rng.random(n) < 0.5
            x[flip] = x[flip][:, :, ::-1]
        if "crop" in kinds:
            ph, pw = max(1, h // 8), max(1, w // 8)
            pad = [(0, 0), (ph, ph), (pw, pw)] + [(0, 0)] * (x.ndim - 3)
            padded = np.pad(x, pad, mode="reflect")
            dy = rng.integers(0, 2 * ph + 1, n)
            dx = rng.integers(0, 2 * pw + 1, n)
            x = np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
        if "color_jitter" in kinds:
            shape = (n,) + (1,) * (x.ndim - 1)
            bright = rng.uniform(0.8, 1.2, shape)
            contrast = rng.uniform(0.8, 1.2, shape)
            f = x.astype(np.float32)
            mean = f.mean(axis=tuple(range(1, f.ndim)), keepdims=True)
            x = np.clip((f - mean) * contrast + mean * bright, 0, 255).round().astype(np.uint8)
        return x

    return augment
