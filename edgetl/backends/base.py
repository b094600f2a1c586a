"""One interface for every runtime the benchmark measures (torch eager, ONNX Runtime providers, TensorRT).

A backend is registered by name in `edgetl.registry.BACKENDS` ("module:Class"); the benchmark dispatches
through that registry only, so adding a runtime is one class + one `Entry(...)` line:

    class MyBackend(Backend):
        name = "my-rt"
        formats = ("onnx",)            # artifact formats it runs: "onnx", "pytorch", "engine"
        def check_available(self): ... # raise BackendUnavailableError(message, hint=how to install)
        def load(self, path, *, threads=None) -> LoadedModel: ...

`LoadedModel.prepare(feed)` returns the zero-argument callable that is timed: it must do everything one
inference needs (copy in, run, copy out, sync) and nothing else, and it may bind static buffers up front.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class LoadedModel:
    """A model loaded in one backend, ready to run numpy feeds."""

    #: names of the inputs the model declares (feeds are filtered to these)
    input_names: list[str] = []

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (first output) for one batch of numpy inputs."""
        raise NotImplementedError

    def prepare(self, feed: dict[str, np.ndarray]) -> Callable[[], object]:
        """The callable the latency loop times (one inference on `feed`)."""
        return lambda: self.run(feed)

    def info(self) -> dict[str, Any]:
        """Facts recorded with the result: providers actually in use, device, builder flags..."""
        return {}

    def input_spec(self) -> list[dict[str, Any]]:
        """[{"name", "dtype", "shape"}] with None or a string for dynamic dimensions (for synthetic inputs)."""
        return []

    def device_time_ms(self) -> list[float] | None:
        """GPU compute times of the timed iterations, when the backend records them separately."""
        return None

    def close(self) -> None:
        return None


class Backend:
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    description: ClassVar[str] = ""

    def check_available(self) -> None:
        """Raise BackendUnavailableError (with an install hint) when this machine cannot run the backend."""
        return None

    def accepts(self, fmt: str) -> bool:
        return fmt in self.formats

    def load(self, path: Path, *, threads: int | None = None) -> LoadedModel:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Runtime versions that decide latency (recorded in the result's fingerprint)."""
        return {}
