"""edgetl: fine-tune, prune, distill, quantize, export and benchmark models for edge devices.

Importing the package is cheap on purpose: torch, onnxruntime and transformers load only when a
stage or backend that needs them runs.

The library (docs/api.md): one function per technique on plain inputs, each returning an `edgetl.Result`:
`edgetl.finetune`, `edgetl.prune`, `edgetl.distill`, `edgetl.quantize`, `edgetl.export_onnx`,
`edgetl.benchmark`, `edgetl.bundle`.
"""

__version__ = "0.1.0"

from edgetl.errors import (  # noqa: E402
    BackendUnavailableError,
    DataError,
    EdgetlError,
    ExportError,
    ModelError,
    RecipeError,
    StageError,
)

# the public technique functions, imported on first use: name -> "module:function". Where a package has the
# function's name (edgetl.prune), the package itself is callable (edgetl/_technique.py) and is what you get.
API = {
    "finetune": "edgetl.finetune.api:finetune",
    "prune": "edgetl.prune.api:prune",
    "distill": "edgetl.distill.api:distill",
    "quantize": "edgetl.quant.api:quantize",
    "export_onnx": "edgetl.export.onnx:export_onnx",
    "benchmark": "edgetl.bench.api:benchmark",
    "bundle": "edgetl.bundle.api:bundle",
    "Result": "edgetl.result:Result",
    "FinetuneConfig": "edgetl.finetune.config:FinetuneConfig",
    "PruneConfig": "edgetl.prune.config:PruneConfig",
    "QuantizeConfig": "edgetl.quant.config:QuantizeConfig",
    "ExportConfig": "edgetl.export.config:ExportConfig",
    "KDConfig": "edgetl.distill.config:KDConfig",
    "DistillConfig": "edgetl.distill.config:DistillConfig",
    "BenchmarkConfig": "edgetl.bench.config:BenchmarkConfig",
}


def __getattr__(name: str):
    import importlib

    target = API.get(name)
    if target is None:
        raise AttributeError(f"module 'edgetl' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    if module == f"edgetl.{name}.api":
        return importlib.import_module(f"edgetl.{name}")
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted([*globals(), *API])


__all__ = [
    *API,
    "__version__",
    "EdgetlError",
    "RecipeError",
    "DataError",
    "ModelError",
    "StageError",
    "ExportError",
    "BackendUnavailableError",
]
