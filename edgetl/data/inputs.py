"""Data handed to the Python API, as the Splits every technique reads: raw images (uint8, (N, H, W) or
(N, H, W, C)) or strings, with int labels. The model's preprocessing turns them into tensors, the same code
a deployed bundle runs, so training, export parity and the device see the same inputs.

Accepted: a DataBundle, a Split, an `(inputs, labels)` pair, or an iterable of `(inputs, labels)` batches such
as a torch DataLoader (read once into memory). torch tensors are fine; channel-first uint8 images
(N, C, H, W with C 1 or 3, as torchvision.io reads them) are turned channel-last.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from edgetl.data.datasets import DataBundle, Split
from edgetl.data.files import CsvTexts
from edgetl.errors import DataError

INPUT_HINT = ("pass raw uint8 images (N,H,W[,C]) or strings with int labels, e.g. (images, labels) arrays or a "
              "DataLoader over them; the model's preprocessing (resize, normalise, tokenize) is applied by edgetl")


def _numpy(x: Any) -> Any:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        return x.detach().cpu().numpy()
    return x


def _inputs(x: Any, what: str) -> np.ndarray | list[str]:
    x = _numpy(x)
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x):
        return list(x)
    arr = np.asarray(x)
    if arr.dtype.kind in "US":
        return [str(t) for t in arr]
    if arr.dtype != np.uint8:
        raise DataError(f"{what} inputs are {arr.dtype} shaped {arr.shape}; expected raw uint8 images or strings",
                        hint=INPUT_HINT)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[3] not in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim not in (3, 4):
        raise DataError(f"{what} images are shaped {arr.shape}; expected (N, H, W) or (N, H, W, C)", hint=INPUT_HINT)
    return np.ascontiguousarray(arr)


def _labels(y: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(_numpy(y))
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or len(arr) != n:
        raise DataError(f"{what} labels are {arr.dtype} shaped {arr.shape} for {n} inputs; expected {n} int class "
                        "indices", hint=INPUT_HINT)
    return arr.astype(np.int64)


def as_split(data: Any, what: str = "train") -> Split:
    """A Split from a Split, an (inputs, labels) pair or an iterable of such batches."""
    if isinstance(data, Split):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        inputs = _inputs(data[0], what)
        return Split(inputs, _labels(data[1], len(inputs), what))
    if not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        raise DataError(f"{what} data is a {type(data).__name__}", hint=INPUT_HINT)
    xs: list[Any] = []
    ys: list[np.ndarray] = []
    for i, batch in enumerate(data):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DataError(f"{what} batch {i} is a {type(batch).__name__}; expected an (inputs, labels) pair",
                            hint=INPUT_HINT)
        x = _inputs(batch[0], f"{what} batch {i}")
        xs.append(x)
        ys.append(_labels(batch[1], len(x), f"{what} batch {i}"))
    if not xs:
        raise DataError(f"{what} data is empty", hint=INPUT_HINT)
    if isinstance(xs[0], list):
        return Split([t for x in xs for t in x], np.concatenate(ys))
    try:
        return Split(np.concatenate(xs), np.concatenate(ys))
    except ValueError:
        raise DataError(f"{what} batches hold images of different sizes ({xs[0].shape[1:]} vs others)",
                        hint="resize the images to one size before handing them over") from None


def as_data(train: Any, eval_data: Any = None, *, label_names: list[str] | None = None) -> DataBundle:
    """A DataBundle from one, or from train and eval data in any form as_split takes."""
    if isinstance(train, DataBundle):
        if eval_data is not None:
            train = DataBundle(train.task, train.label_names, train.train, as_split(eval_data, "eval"), train.source)
        return train
    if eval_data is None:
        raise DataError("no eval data: every technique picks its best epoch and reports its accuracy on held-out data",
                        hint="pass eval data (same form as train), or a DataBundle holding both")
    tr, ev = as_split(train, "train"), as_split(eval_data, "eval")
    task = "text" if isinstance(tr.inputs, (list, CsvTexts)) else "image"  # CsvTexts: a big CSV read from disk
    if ("text" if isinstance(ev.inputs, (list, CsvTexts)) else "image") != task:
        raise DataError(f"train data is {task} but eval data is not", hint=INPUT_HINT)
    n = int(max(tr.labels.max(initial=0), ev.labels.max(initial=0))) + 1
    names = list(label_names) if label_names else [str(i) for i in range(n)]
    if n > len(names):
        raise DataError(f"labels go up to {n - 1} but only {len(names)} label names were given")
    return DataBundle(task, names, tr, ev, "python")
