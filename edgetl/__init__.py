"""edgetl: fine-tune, prune, distill, quantize, export and benchmark models for edge devices.

Importing the package is cheap on purpose: torch, onnxruntime and transformers load only when a
stage or backend that needs them runs.
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

__all__ = [
    "__version__",
    "EdgetlError",
    "RecipeError",
    "DataError",
    "ModelError",
    "StageError",
    "ExportError",
    "BackendUnavailableError",
]
