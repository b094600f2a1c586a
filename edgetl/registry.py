"""Registries of stages and benchmark backends: stable names -> "module:Class", imported lazily.

Each entry also names the Python modules it needs and the extra that installs them, so `edgetl validate`
can say `pip install edgetl[prune]` before any training starts.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from edgetl.errors import RecipeError


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:Attribute"
    requires: tuple[str, ...] = field(default=())  # importable module names
    extra: str | None = None  # pip extra that installs `requires`
    hint: str | None = None  # install hint when `requires` cannot be pip-installed from the extra alone

    def load(self) -> Any:
        module_name, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def missing(self) -> list[str]:
        """Modules this entry needs that are not importable here (checked without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def install_hint(self) -> str:
        if self.hint:
            return self.hint
        if self.extra:
            return f"pip install 'edgetl[{self.extra}]'"
        return "pip install " + " ".join(self.missing())

class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"duplicate {self.kind} name {entry.name!r}")
        self._entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise RecipeError(f"unknown {self.kind} {name!r}; expected one of: {known}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self):
        return iter(self._entries.values())


STAGES = Registry("stage")
for _entry in (
    Entry("finetune", "edgetl.stages.finetune:FinetuneStage", ("torch",)),
    Entry("export", "edgetl.stages.export:ExportStage", ("torch", "onnx")),
    Entry("quantize", "edgetl.stages.quantize:QuantizeStage", ("onnx", "onnxruntime")),
    Entry("benchmark", "edgetl.stages.benchmark:BenchmarkStage", ("onnxruntime",)),
    Entry("prune", "edgetl.stages.prune:PruneStage", ("torch", "torch_pruning", "onnx", "onnxruntime"), "prune"),
    Entry("distill", "edgetl.stages.distill:DistillStage", ("torch",)),
    Entry("bundle", "edgetl.stages.bundle:BundleStage", ("onnx",)),
    Entry("build_engine", "edgetl.stages.build_engine:BuildEngineStage", ("tensorrt", "cuda"), "trt",
          "TensorRT + an NVIDIA GPU: pip install 'edgetl[trt]' on a desktop; on a Jetson use JetPack 6's TensorRT "
          "and pip install 'edgetl[jetson]' (see Dockerfile.jetson)"),
):
    STAGES.register(_entry)

BACKENDS = Registry("backend")
for _entry in (
    Entry("ort-cpu", "edgetl.backends.onnxruntime:OrtCpuBackend", ("onnxruntime",)),
    Entry("torch", "edgetl.backends.torch_eager:TorchBackend", ("torch",)),
    Entry("ort-cuda", "edgetl.backends.onnxruntime:OrtCudaBackend", ("onnxruntime",), "gpu"),
    Entry("ort-trt", "edgetl.backends.onnxruntime:OrtTrtBackend", ("onnxruntime",), "gpu"),
    Entry("tensorrt", "edgetl.backends.tensorrt:TensorRTBackend", ("tensorrt", "cuda"), "trt",
          "pip install 'edgetl[trt]' on a machine with an NVIDIA GPU; on a Jetson, JetPack 6's TensorRT + 'edgetl[jetson]'"),
    Entry("tensorrt-graph", "edgetl.backends.tensorrt:TensorRTGraphBackend", ("tensorrt", "cuda"), "trt",
          "pip install 'edgetl[trt]' on a machine with an NVIDIA GPU; on a Jetson, JetPack 6's TensorRT + 'edgetl[jetson]'"),
):
    BACKENDS.register(_entry)
