"""`torch`: eager PyTorch FP32 on the CPU, the reference every deployed artifact is compared with.
Runs saved edgetl model folders (`pytorch` artifacts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.base import Backend, LoadedModel


class TorchModel(LoadedModel):
    def __init__(self, model, threads: int | None):
        self.model = model  # EdgeModel
        self.threads = threads
        self.input_names = list(model.preprocessing.input_names)

    def _tensors(self, feed: dict[str, np.ndarray]):
        from edgetl.models.base import to_torch

        return to_torch({k: v for k, v in feed.items() if k in self.input_names})

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.module(**self._tensors(feed)).float().numpy()

    def prepare(self, feed: dict[str, np.ndarray]) -> Callable[[], object]:
        import torch

        module = self.model.module
        tensors = self._tensors(feed)

        @torch.inference_mode()
        def step():
            return module(**tensors)

        return step

    def input_spec(self) -> list[dict[str, Any]]:
        pre = self.model.preprocessing
        if pre.kind == "image":
            return [{"name": pre.input_names[0], "dtype": "float32", "shape": [None, pre.channels, pre.size, pre.size]}]
        return [{"name": n, "dtype": "int64", "shape": [None, int(pre.max_length or 128)]} for n in pre.input_names]

    def info(self) -> dict[str, Any]:
        import torch

        return {"device": "cpu", "torch_threads": torch.get_num_threads(), "mode": "eager, inference_mode, fp32"}


class TorchBackend(Backend):
    name = "torch"
    formats = ("pytorch",)
    description = "PyTorch eager FP32 on the CPU (reference)"

    def load(self, path: Path, *, threads: int | None = None) -> TorchModel:
        import torch

        from edgetl.models.base import load_model

        if threads:
            torch.set_num_threads(int(threads))
        model = load_model(path)
        model.module.eval()
        return TorchModel(model, threads)

    def versions(self) -> dict[str, str]:
        import torch

        return {"torch": torch.__version__}
