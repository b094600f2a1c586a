"""The `ort-cpu` / `ort-cuda` / `ort-trt` benchmark backends and helpers to run ONNX Runtime sessions, all on
the sessions `edgetl.runtime.ort` makes (the one place that decides threads, providers and graph optimisation)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.base import Backend, LoadedModel
from edgetl.runtime.ort import check_provider, make_session

log = logging.getLogger(__name__)


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
