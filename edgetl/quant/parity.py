"""Parity of the deployed artifact: the exported INT8 ONNX run by ONNX Runtime against the fake-quantized
torch model on the same eval examples (top-1 agreement, max and mean abs logit difference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def onnx_parity(path: Path, encoder, raw_inputs: Any, reference_logits: np.ndarray, batch_size: int = 32
                ) -> dict[str, float]:
    from edgetl.backends.onnxruntime import make_session, predict

    session = make_session(path, threads=None)
    logits = predict(session, encoder, raw_inputs, batch_size=batch_size)
    diff = np.abs(logits - reference_logits)
    return {"top1_agreement": float((logits.argmax(-1) == reference_logits.argmax(-1)).mean()),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "samples": int(len(raw_inputs))}
