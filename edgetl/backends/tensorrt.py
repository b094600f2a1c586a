"""`tensorrt` benchmark backend: engine files (or ONNX, built here first) run with the tensor-address API.

The timed callable does what an app does per inference: copy the bound input from pinned host memory to the
GPU, `execute_async_v3` (or replay a CUDA graph), copy the output back, synchronize; that is the host
end-to-end time. CUDA events recorded on the same stream around the execute give GPU compute time, reported
separately (`device_time_ms`). Accuracy runs through the engine (`run`), chunked to the profile's max batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.base import Backend, LoadedModel
from edgetl.errors import BackendUnavailableError

log = logging.getLogger(__name__)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class TrtModel(LoadedModel):
    def __init__(self, session, path: Path, build: dict[str, Any] | None = None):
        self.session = session
        self.path = path
        self.build = build or {}
        self.input_names = list(session.input_names)
        self._gpu_ms: list[float] = []

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for any batch size: chunks of at most the profile's max batch."""
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        n = len(next(iter(feed.values())))
        step = self.session.max_batch() or n
        out_name = self.session.output_names[0]
        parts = [self.session.infer({k: v[i : i + step] for k, v in feed.items()})[out_name] for i in range(0, n, step)]
        return np.concatenate(parts)

    def prepare(self, feed: dict[str, np.ndarray]) -> Callable[[], object]:
        """Bind the inputs once (static pinned buffers); the timed call is copy in + execute + copy out + sync."""
        self.session.bind({k: v for k, v in feed.items() if k in self.input_names})
        self._gpu_ms = []
        session, times = self.session, self._gpu_ms

        def one() -> None:
            session.execute()
            times.append(float(session.last_gpu_ms or 0.0))

        return one

    def device_time_ms(self, last: int | None = None) -> list[float] | None:
        """GPU compute time (CUDA events around execute) of the calls since the last `prepare`; `last` keeps
        only the final n (the timed iterations after warm-up)."""
        if not self._gpu_ms:
            return None
        return list(self._gpu_ms[-last:]) if last else list(self._gpu_ms)

    def input_spec(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "dtype": s.dtype.name, "shape": [None if d < 0 else int(d) for d in s.shape]}
                for s in self.session.specs if s.is_input]

    def info(self) -> dict[str, Any]:
        from edgetl.trt.device import device_info

        dev = device_info().to_dict()
        return {"engine": str(self.path), "device": dev["name"], "compute_capability": dev["compute_capability"],
                "jetpack": dev["jetpack"], "sm_count": dev["sm_count"], "total_memory_bytes": dev["total_memory_bytes"],
                "board": dev["board"], "cuda_graph": self.session.use_cuda_graph, "pinned_host_buffers": True,
                "io": self.session.io(), **({"build": self.build} if self.build else {})}

    def close(self) -> None:
        self.session.close()


class TensorRTBackend(Backend):
    name = "tensorrt"
    formats = ("engine", "onnx")
    description = ("TensorRT engine via the tensor-address API: host end-to-end time (pinned copies + "
                   "execute_async_v3 + sync) and GPU compute time from CUDA events")

    def __init__(self, use_cuda_graph: bool = False, cache_dir: str | Path | None = None):
        self.use_cuda_graph = use_cuda_graph
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def check_available(self) -> None:
        from edgetl.trt.device import require_tensorrt

        require_tensorrt()

    def load(self, path: Path, *, threads: int | None = None) -> TrtModel:
        """An engine file, or an ONNX file built into an engine here first (engine cache keyed by content)."""
        from edgetl.trt.runner import TrtSession

        path = Path(path)
        if not path.is_file():
            raise BackendUnavailableError(f"{path} does not exist", hint="pass an engine (.plan) or an ONNX file")
        build = None
        if path.suffix == ".onnx":
            import hashlib

            from edgetl.trt.builder import BuildOptions, build_engine
            from edgetl.trt.cache import cache_root

            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            out = cache_root(self.cache_dir) / "bench" / f"{path.stem}-{digest}.plan"
            result = build_engine(path, out, BuildOptions(cache_dir=self.cache_dir))
            build, path = result.info(), result.engine_path
        elif path.suffix not in ENGINE_SUFFIXES:
            log.info("%s: not a usual engine suffix (%s); loading it as an engine", path, ", ".join(ENGINE_SUFFIXES))
        return TrtModel(TrtSession(path, use_cuda_graph=self.use_cuda_graph), path, build)

    def versions(self) -> dict[str, str]:
        from edgetl.trt.device import device_info

        dev = device_info()
        # cuda_runtime (older key) is cuda-python's statically linked runtime, the same as cuda_python_runtime
        return {"tensorrt": dev.trt_version, "cuda_runtime": dev.cuda_runtime or "unknown",
                "cuda_python_runtime": dev.cuda_python_runtime or "unknown", "cuda_driver": dev.cuda_driver or "unknown",
                "cuda_python": dev.cuda_python or "unknown"}


class TensorRTGraphBackend(TensorRTBackend):
    """Same, with the execute replayed as a CUDA graph (lower launch overhead for small models)."""

    name = "tensorrt-graph"

    def __init__(self):
        super().__init__(use_cuda_graph=True)
