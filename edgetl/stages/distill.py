"""`distill` stage: train a student against a frozen teacher, over `edgetl.distill` (edgetl/distill/api.py).

Here: the teacher a recipe names (`kd.teacher`: an earlier artifact or a model folder, by default the newest
fine-tuned model), the current model as the default student, the logit cache under the run, the artifact.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from edgetl.distill.config import DistillConfig
from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class DistillStageConfig(DistillConfig, StageConfig):
    type: Literal["distill"] = Field(description="Knowledge distillation from a teacher into a student.")


class DistillStage(Stage[DistillStageConfig]):
    type = "distill"
    Config = DistillStageConfig
    default_name = "distilled"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.models.zoo import ZOO
        from edgetl.stages.kd import kd_problems

        cfg = self.config
        problems = kd_problems(cfg.kd, recipe, self.index, self.field("kd"), plan.task, default_from_earlier=True)
        if cfg.keep_layers is not None and plan.task != "text":
            problems.append(f"{self.field('keep_layers')}: layer dropping applies to transformers; for image "
                            "models use student_model (e.g. mobilenet_v2)")
        if cfg.student_model is not None:
            entry = ZOO.get(cfg.student_model)
            if entry is None:
                problems.append(f"{self.field('student_model')}: {cfg.student_model!r} is not a zoo model "
                                f"({', '.join(ZOO)})")
            elif entry.task != plan.task:
                problems.append(f"{self.field('student_model')}: {cfg.student_model} is a {entry.task} model but the "
                                f"data is {plan.task}")
            elif entry.task == "text" and cfg.student_model not in ("minilm_l6", "tiny_bert"):
                problems.append(f"{self.field('student_model')}: text students must share the teacher's tokenizer")
        plan.available.append(("pytorch", "fp32"))
        return problems

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.distill.api import distill
        from edgetl.models.base import save_model
        from edgetl.stages.kd import load_teacher, logit_cache_path
        from edgetl.train.loop import seed_everything

        cfg = self.config
        seed = ctx.recipe.seed + self.index
        seed_everything(seed)
        data = ctx.data()
        teacher, teacher_name = load_teacher(ctx, cfg.kd.teacher)
        student, parent = None, None
        if cfg.keep_layers is not None:
            parent = teacher_name
        elif cfg.student_model is None:
            student, parent = ctx.current_model()
            if parent == teacher_name:
                from edgetl.errors import RecipeError

                raise RecipeError(f"{self.field('kd.teacher')}: the teacher {teacher_name!r} is also the current model, "
                                  "so there is nothing to distil into",
                                  hint="set keep_layers or student_model, or put the stage after prune")

        def cache_path(student):  # the student is made inside distill() (keep_layers, student_model)
            return logit_cache_path(ctx, cfg.kd, teacher_name, student)

        result = distill(student, teacher, data, config=cfg, seed=seed, progress=ctx.progress,
                         kd_cache=cache_path if cfg.kd.cache else None, field_prefix=f"stages.{self.index}.")
        student, metrics = result.model, result.metrics
        student.info["distilled_from"] = metrics["teacher"]["name"] = teacher_name
        save_model(student, ctx.work_dir / "model")
        ctx.metrics.update(metrics)
        s = metrics["student"]
        return [ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent,
            metrics={"accuracy": s["accuracy"], "accuracy_source": "torch eval during distillation"},
            info={"params": s["params"], "macs": s["macs"], "method": f"distill-{s['kind']}", "teacher": teacher_name,
                  "total_params": s["params"]},
        )]
