"""ONNX Runtime sessions: one place that decides threads, providers and graph optimisation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import BackendUnavailableError

log = logging.getLogger(__name__)

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def make_session(path: str | Path, threads: int | None = None, backend: str = "ort-cpu"):
    """A latency-friendly session: fixed intra-op threads, sequential execution, all graph optimisations."""
    import onnxruntime as ort

    providers = PROVIDERS[backend]
    available = ort.get_available_providers()
    if providers[0] not in available:
        raise BackendUnavailableError(
            f"{backend} needs ONNX Runtime's {providers[0]}, which this install lacks (has {', '.join(available)})",
            hint="pip install 'edgetl[gpu]' (onnxruntime-gpu) on a machine with CUDA"
            + ("; the TensorRT provider also needs TensorRT's libraries" if backend == "ort-trt" else ""),
        )
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=providers)


def session_inputs(session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Only the inputs the graph declares (an exporter may drop unused ones, e.g. token_type_ids)."""
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in inputs.items() if k in names}


def run_logits(session, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return session.run(None, session_inputs(session, inputs))[0]


def predict(session, encoder, raw_inputs: Any, batch_size: int = 64) -> np.ndarray:
    outs = []
    for start in range(0, len(raw_inputs), batch_size):
        outs.append(run_logits(session, encoder(raw_inputs[start : start + batch_size])))
    return np.concatenate(outs)
