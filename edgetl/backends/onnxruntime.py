"""ONNX Runtime sessions: one place that decides threads, providers and graph optimisation, and the
`ort-cpu` / `ort-cuda` / `ort-trt` benchmark backends built on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.base import Backend, LoadedModel
from edgetl.errors import BackendUnavailableError

log = logging.getLogger(__name__)

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
HINTS = {
    "ort-cpu": "pip install onnxruntime",
    "ort-cuda": "pip install 'edgetl[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA GPU, CUDA 12 and cuDNN 9",
    "ort-trt": "pip install 'edgetl[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA GPU, plus TensorRT's libraries "
               "(pip install tensorrt, or JetPack on a Jetson)",
}


def check_provider(backend: str) -> None:
    import onnxruntime as ort

    providers = PROVIDERS[backend]
    available = ort.get_available_providers()
    if providers[0] not in available:
        raise BackendUnavailableError(
            f"{backend} needs ONNX Runtime's {providers[0]}, which this install lacks (has {', '.join(available)})",
            hint=HINTS[backend],
        )


def make_session(path: str | Path | bytes, threads: int | None = None, backend: str = "ort-cpu"):
    """A latency-friendly session: fixed intra-op threads, sequential execution, all graph optimisations.

    path: an ONNX file, or its bytes (a bundle hands out bytes it has just hashed, so what runs is what was checked).
    """
    import onnxruntime as ort

    check_provider(backend)
    providers = PROVIDERS[backend]
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(model, sess_options=so, providers=providers)
    where = "the model bytes" if isinstance(path, bytes) else path
    if session.get_providers()[0] != providers[0]:
        # ORT falls back to the CPU silently when a GPU provider's libraries fail to load
        raise BackendUnavailableError(
            f"{backend}: ONNX Runtime could not start {providers[0]} for {where} (it fell back to "
            f"{session.get_providers()[0]}); its CUDA/cuDNN/TensorRT libraries are missing or do not match",
            hint=HINTS[backend],
        )
    return session


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


ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool"}


class OrtModel(LoadedModel):
    def __init__(self, session, backend: str, threads: int | None):
        self.session = session
        self.backend = backend
        self.threads = threads
        self.input_names = [i.name for i in session.get_inputs()]

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return run_logits(self.session, feed)

    def prepare(self, feed: dict[str, np.ndarray]) -> Callable[[], object]:
        run = self.session.run
        bound = session_inputs(self.session, feed)
        return lambda: run(None, bound)

    def input_spec(self) -> list[dict[str, Any]]:
        return [{"name": i.name, "dtype": ORT_DTYPES.get(i.type, "float32"),
                 "shape": [d if isinstance(d, int) else None for d in i.shape]} for i in self.session.get_inputs()]

    def info(self) -> dict[str, Any]:
        return {"providers": self.session.get_providers(), "intra_op_threads": self.threads,
                "graph_optimization": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL"}


class OrtBackend(Backend):
    name = "ort-cpu"
    formats = ("onnx",)
    description = "ONNX Runtime, CPU execution provider"

    def check_available(self) -> None:
        check_provider(self.name)

    def load(self, path: Path, *, threads: int | None = None) -> OrtModel:
        return OrtModel(make_session(path, threads=threads, backend=self.name), self.name, threads)

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__}


class OrtCpuBackend(OrtBackend):
    name = "ort-cpu"


class OrtCudaBackend(OrtBackend):
    name = "ort-cuda"
    description = "ONNX Runtime, CUDA execution provider (host end-to-end time: copy in + run + copy out)"


class OrtTrtBackend(OrtBackend):
    name = "ort-trt"
    description = "ONNX Runtime, TensorRT execution provider"
