"""`bundle`: write the deployable folder (ONNX per backend layout, engines, manifest with sha256 of every file)
as the run's last step, so `RUN/stages/NN-bundle-*/bundle/` is what an app embeds.

Accuracy and latency come from the earlier stages' own results, arranged exactly as report.json arranges them
(`edgetl.report.build.build_report`), so the stage and `edgetl bundle RUN_DIR` write the same numbers.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact, lineage
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class BundleConfig(StageConfig):
    type: Literal["bundle"] = Field(
        description="Write a deployment bundle: ONNX per backend layout, TensorRT engines built so far, and a "
        "manifest (I/O, preprocessing, labels, quantization, measured accuracy and latency, sha256 of every file)."
    )
    artifacts: list[str] | None = Field(
        None, description="ONNX artifact names to ship (default: for each Q/DQ layout the report's final model or "
        "the newest one, plus the newest FP32 model)."
    )
    engines: bool = Field(True, description="Include TensorRT engines built by earlier `build_engine` stages.")


class BundleStage(Stage[BundleConfig]):
    type = "bundle"
    Config = BundleConfig
    default_name = "bundle"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        if not plan.has("onnx"):
            return [f"{self.field('type')}: bundle needs an ONNX model before it: put an `export` stage first"]
        return []

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.bench.fingerprint import environment
        from edgetl.bundle.writer import assemble
        from edgetl.report.build import build_report

        cfg = self.config
        report = build_report(ctx.recipe, ctx.artifacts, ctx.records)
        artifacts = [{**a.to_dict(), "lineage": lineage(ctx.artifacts, a.name)} for a in ctx.artifacts.values()]
        manifest = assemble(ctx.run_dir, ctx.work_dir / "bundle", run_name=ctx.recipe.name, artifacts=artifacts,
                            report=report, environment=environment(), names=cfg.artifacts, engines=cfg.engines,
                            source={"run": ctx.run_dir.name, "stage": ctx.stage_id})
        default = manifest["defaults"].get("onnxruntime")
        precision = next((m["precision"] for m in manifest["models"] if m["name"] == default), "fp32")
        info = {"models": [m["name"] for m in manifest["models"]], "engines": [e["name"] for e in manifest["engines"]],
                "defaults": manifest["defaults"], "files": len(manifest["files"])}
        ctx.metrics.update(info)
        log.info("bundle: %s (+%d engine(s)), default %s", ", ".join(info["models"]), len(info["engines"]), default)
        return [ctx.artifact(self.artifact_name, "bundle", precision, "bundle", parent=default, info=info)]
