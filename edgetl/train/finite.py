"""NaN and infinity in outputs that are compared or scored.

A diverged model gives NaN logits, and NaN slips through every plain comparison: `nan > atol` is False, and
argmax of an all-NaN row is class 0 on both sides of a parity check (agreement 1.0). Every check that
compares logits or scores them asks here first, and fails when the answer is not empty.
"""

from __future__ import annotations

import numpy as np


def nonfinite(**arrays: np.ndarray) -> str:
    """'' when every array holds only finite numbers, else which do not, e.g.
    'torch logits: 640 of 640 values NaN or infinite'."""
    notes = []
    for name, values in arrays.items():
        a = np.asarray(values)
        if not np.issubdtype(a.dtype, np.floating):
            continue
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            notes.append(f"{name.replace('_', ' ')}: {bad} of {a.size} values NaN or infinite")
    return "; ".join(notes)


def over(value: float, limit: float) -> bool:
    """value > limit, where NaN counts as over (a failed check, never a passed one)."""
    return not value <= limit


def under(value: float, limit: float) -> bool:
    """value < limit, where NaN counts as under."""
    return not value >= limit
