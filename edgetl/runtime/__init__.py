"""Light runtime for deployed bundles: numpy + onnxruntime (or tensorrt), never torch.

`from edgetl.runtime import Predictor` loads nothing heavy until `Predictor.from_bundle(...)` makes a session.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Predictor", "Prediction", "Bundle", "BundleError", "load_bundle"]

_LAZY = {
    "Predictor": "edgetl.runtime.predictor",
    "Prediction": "edgetl.runtime.predictor",
    "Bundle": "edgetl.runtime.bundle",
    "BundleError": "edgetl.runtime.bundle",
    "load_bundle": "edgetl.runtime.bundle",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgetl.runtime' has no attribute {name!r}")
