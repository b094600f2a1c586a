"""`export` stage: the current PyTorch model to ONNX, checked against torch on real eval samples, over
`edgetl.export_onnx` (edgetl/export/onnx.py)."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from edgetl.export.config import ExportConfig
from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class ExportStageConfig(ExportConfig, StageConfig):
    type: Literal["export"] = Field(description="Export the current PyTorch model to ONNX (FP32).")


class ExportStage(Stage[ExportStageConfig]):
    type = "export"
    Config = ExportStageConfig
    default_name = "onnx_fp32"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        problems = []
        if not plan.has("pytorch"):
            problems.append(f"{self.field('type')}: export needs a PyTorch model before it")
        plan.available.append(("onnx", "fp32"))
        return problems

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.export.onnx import export_onnx

        cfg = self.config
        model, parent = ctx.current_model()
        result = export_onnx(model, ctx.work_dir / "onnx", cfg, data=ctx.data())
        info = result.metrics
        ctx.metrics.update({"parity": info["parity"], "opset": info["opset"]})
        return [ctx.artifact(self.artifact_name, "onnx", "fp32", "onnx/model.onnx", parent=parent, info=info)]
