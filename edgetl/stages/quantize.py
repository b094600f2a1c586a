"""`quantize` stage: INT8 by PTQ of the newest FP32 ONNX or QAT of the current PyTorch model, over
`edgetl.quantize` (edgetl/quant/api.py; the config and its layouts are in edgetl/quant/config.py). Here: where
calibration examples come from in a recipe, the folders, the artifacts, the report."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgetl.quant.config import CALIBRATION_SEED, QuantizeConfig
from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class QuantizeStageConfig(QuantizeConfig, StageConfig):
    type: Literal["quantize"] = Field(description="Quantize to INT8: post-training (ptq) or quantization-aware (qat).")


class QuantizeStage(Stage[QuantizeStageConfig]):
    type = "quantize"
    Config = QuantizeStageConfig
    default_name = "onnx_int8"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.stages.finetune import adapt_target

        cfg = self.config
        problems = [f"{self.field(f)}: {msg}" for f, msg in cfg.problems()]
        if cfg.method == "ptq":
            if not plan.has("onnx", "fp32"):
                problems.append(f"{self.field('type')}: quantize (ptq) needs an FP32 ONNX model: put an `export` stage "
                                "before it")
        else:
            if importlib.util.find_spec("torchao") is None or importlib.util.find_spec("onnxscript") is None:
                problems.append(f"{self.field('method')}: qat needs torchao and onnxscript: pip install 'edgetl[qat]'")
            if not plan.has("pytorch"):
                problems.append(f"{self.field('method')}: qat needs a PyTorch model before it")
        if cfg.calibration_data == "target" and adapt_target(recipe, self.index) is None:
            problems.append(f"{self.field('calibration_data')}: `target` means the target data of a finetune "
                            "stage's `adapt:` before this stage, and there is none; add `adapt: {method: ..., "
                            "target: ...}` to the finetune stage or use calibration_data: source")
        plan.available.append(("onnx", "int8"))
        return problems

    def calibration_split(self, ctx: StageContext) -> Any:
        """The calibration examples (a Split): a stratified sample of the training data, or with
        `calibration_data: target` a random sample of the adaptation target's inputs (labels -1)."""
        import numpy as np

        from edgetl.data.datasets import Split, load_target, stratified_subset
        from edgetl.stages.finetune import adapt_target

        cfg = self.config
        seed = ctx.recipe.seed + CALIBRATION_SEED
        target_cfg = adapt_target(ctx.recipe, self.index) if cfg.calibration_data == "target" else None
        if target_cfg is None:
            data = ctx.data()
            return data.train.take(stratified_subset(data.train.labels, cfg.samples, seed))
        inputs = load_target(target_cfg).inputs
        idx = np.sort(np.random.default_rng(seed).permutation(len(inputs))[: cfg.samples])
        return Split(inputs, np.full(len(inputs), -1, dtype=np.int64)).take(idx)

    def artifact_names(self) -> dict[str, str]:
        cfg = self.config
        layouts = cfg.layouts()
        if len(layouts) == 1:
            return {layouts[0]: self.artifact_name}
        return {lay: f"{self.artifact_name}_{lay}" for lay in layouts}

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.quant.api import quantize

        cfg = self.config
        names = self.artifact_names()
        one = next(iter(names)) if len(names) == 1 else None
        # (folder names as report.json has always shown them: onnx/ for one ptq layout, else onnx-<layout>/)
        out = ctx.work_dir if one is None else ctx.work_dir / ("onnx" if cfg.method == "ptq" else f"onnx-{one}")
        if cfg.method == "ptq":
            src = ctx.latest("onnx", "fp32")
            assert src is not None  # guaranteed by problems()
            parent: str | None = src.name
            result = quantize(ctx.path_of(src), None, ctx.data().eval if cfg.fallback else None, cfg, out,
                              calibration=self.calibration_split(ctx), seed=ctx.recipe.seed,
                              field_prefix=f"stages.{self.index}.")
        else:
            model, parent = ctx.current_model()
            result = quantize(model, ctx.data(), None, cfg, out, calibration=self.calibration_split(ctx),
                              seed=ctx.recipe.seed + self.index, progress=ctx.progress,
                              field_prefix=f"stages.{self.index}.")
        metrics = dict(result.metrics)
        files, infos = metrics.pop("files"), metrics.pop("infos")
        produced = []
        for layout, name in names.items():
            rel = Path(files[layout]).relative_to(ctx.work_dir).as_posix()
            produced.append(ctx.artifact(name, "onnx", "int8", rel, parent=parent, info=infos[layout]))
            metrics.setdefault("layouts", {})[layout] = {"artifact": name, "qdq_nodes": infos[layout]["qdq_nodes"]}
        ctx.metrics.update(metrics)
        return produced
