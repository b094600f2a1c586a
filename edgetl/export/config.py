"""Configuration of ONNX export (`edgetl.export_onnx`, the `export` recipe stage). Light: pydantic only."""

from __future__ import annotations

from pydantic import Field

from edgetl.recipe.schema import StrictModel


class ExportConfig(StrictModel):
    opset: int = Field(17, ge=13, le=21, description="ONNX opset to write (17 is safe for TensorRT 10.3 and ONNX Runtime).")
    parity_samples: int = Field(64, ge=1, le=10000, description="Eval examples on which ONNX Runtime is compared with torch.")
    parity_atol: float = Field(1e-3, gt=0, description="Largest allowed max-abs logit difference ONNX vs torch.")
    min_agreement: float = Field(0.99, ge=0, le=1, description="Smallest allowed top-1 agreement ONNX vs torch.")
