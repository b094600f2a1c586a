"""`prune` stage: structured pruning to a budget, over `edgetl.prune` (edgetl/prune/api.py), which holds the
budget search and recovery. Here: the teacher and logit cache a recipe names, the artifact, the report."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from edgetl.prune.config import PruneConfig
from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

if TYPE_CHECKING:
    from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)


class PruneStageConfig(PruneConfig, StageConfig):
    type: Literal["prune"] = Field(description="Structured pruning (channels / heads / FFN neurons) to a budget.")


class PruneStage(Stage[PruneStageConfig]):
    type = "prune"
    Config = PruneStageConfig
    default_name = "pruned"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.stages.kd import kd_problems

        cfg = self.config
        problems = []
        if not plan.has("pytorch"):
            problems.append(f"{self.field('type')}: prune needs a PyTorch model before it")
        from edgetl.prune.structured import hf_image_transformer

        kind = hf_image_transformer(recipe.model.source)
        if kind:
            problems.append(f"{self.field('type')}: {recipe.model.source} is an image transformer ({kind}); structured "
                            "pruning handles CNN channels and BERT-family heads/FFN neurons: drop the prune stage")
        if plan.task == "text":
            if cfg.importance == "bn_scale":
                problems.append(f"{self.field('importance')}: bn_scale ranks BatchNorm scales; transformers have "
                                "none: use l1, l2 or taylor")
            if not cfg.heads and not cfg.ffn:
                problems.append(f"{self.field('heads')}: heads and ffn are both false, so nothing can be pruned; "
                                "enable at least one")
            if cfg.heads is False and cfg.head_ratio:
                problems.append(f"{self.field('head_ratio')}: set, but heads is false; drop one of them")
        else:
            wrong = [f for f, bad in (("heads", not cfg.heads), ("ffn", not cfg.ffn),
                                      ("head_ratio", cfg.head_ratio is not None)) if bad]
            if wrong:
                problems.append(f"{self.field(wrong[0])}: heads / ffn / head_ratio apply to transformers; "
                                "this is an image model: remove them")
        if cfg.target.kind == "latency_ms" and not cfg.measure_latency:
            problems.append(f"{self.field('measure_latency')}: a latency_ms target needs measure_latency: true")
        if cfg.target.kind == "ratio" and cfg.target.ratio > cfg.max_layer_ratio:
            problems.append(f"{self.field('target.ratio')}: {cfg.target.ratio} exceeds max_layer_ratio "
                            f"{cfg.max_layer_ratio}; lower the ratio or raise max_layer_ratio")
        if cfg.kd is not None:
            if not cfg.recovery and cfg.step_recovery_steps == 0:
                problems.append(f"{self.field('kd')}: KD applies to recovery training, which is off "
                                "(recovery: false, step_recovery_steps: 0); enable recovery or drop kd")
            problems += kd_problems(cfg.kd, recipe, self.index, self.field("kd"), plan.task, default_from_earlier=False)
        plan.available.append(("pytorch", "fp32"))
        return problems

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.prune.api import prune
        from edgetl.train.loop import seed_everything

        cfg = self.config
        seed = ctx.recipe.seed + self.index
        seed_everything(seed)
        model, parent = ctx.current_model()
        data = ctx.data()
        # default teacher: the model before pruning (the function's own copy); a named one loads when needed
        named = {"name": f"{parent or ctx.recipe.model.source} (before pruning)"}

        def load_named_teacher():
            from edgetl.stages.kd import load_teacher

            teacher, named["name"] = load_teacher(ctx, cfg.kd.teacher)
            return teacher

        named_teacher = cfg.kd is not None and cfg.kd.teacher is not None
        result = prune(model, data, config=cfg, out=ctx.work_dir / "model", seed=seed, progress=ctx.progress,
                       teacher=load_named_teacher if named_teacher else None,
                       kd_cache=self._cache_path(ctx, parent, model), field_prefix=f"stages.{self.index}.")
        metrics = result.metrics
        if "teacher" in metrics["recovery"]:
            metrics["recovery"]["teacher"] = named["name"]
        parent_art = ctx.artifacts.get(parent) if parent else None
        metrics["before"]["size_bytes"] = parent_art.size_bytes if parent_art else None
        ctx.metrics.update(metrics)
        macs1, params1, met = metrics["after"]["macs"], metrics["after"]["params"], metrics["budget_met"]
        art = ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent,
            metrics={"accuracy": metrics["after"]["accuracy"], "accuracy_source": "torch eval after prune recovery"},
            info={"params": params1, "macs": macs1, "macs_ratio": metrics["macs_ratio"],
                  "params_ratio": metrics["params_ratio"],
                  "method": f"prune-{cfg.importance}" + ("+kd" if cfg.kd and cfg.recovery else ""), "budget_met": met},
        )
        metrics["after"]["size_bytes"] = art.size_bytes
        return [art]

    def _cache_path(self, ctx: StageContext, parent: str | None, model: EdgeModel):
        from edgetl.stages.kd import logit_cache_path

        cfg = self.config
        if cfg.kd is None:
            return None
        return logit_cache_path(ctx, cfg.kd, cfg.kd.teacher or parent or ctx.recipe.model.source, model)
