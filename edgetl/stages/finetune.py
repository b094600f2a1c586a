"""`finetune` stage: transfer learning of the source model onto the recipe's data, over `edgetl.finetune`
(edgetl/finetune/api.py; methods in edgetl/finetune/). Here: the checks `edgetl validate` runs, the teacher a
recipe names (`kd.teacher`), the logit cache under the run, the adaptation target data, the artifact.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from edgetl.finetune.config import FinetuneConfig
from edgetl.recipe.schema import DataConfig, StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


def adapt_target(recipe, before: int) -> DataConfig | None:
    """The target data of the newest `finetune` stage with `adapt:` among the stages before index `before`."""
    for stage in reversed(recipe.stages[:before]):
        if getattr(stage, "type", None) == "finetune" and stage.adapt is not None:
            return stage.adapt.target
    return None


class FinetuneStageConfig(FinetuneConfig, StageConfig):
    type: Literal["finetune"] = Field(description="Fine-tune the current model on the target data.")


class FinetuneStage(Stage[FinetuneStageConfig]):
    type = "finetune"
    Config = FinetuneStageConfig
    default_name = "finetuned"
    distributed = True  # runs on every rank under torchrun (DDP); rank 0 alone writes the artifacts

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.finetune.checks import model_problems, option_problems

        plan.available.append(("pytorch", "fp32"))
        cfg = self.config
        out = option_problems(cfg, plan.task, self.field)
        if cfg.kd is not None:
            from edgetl.stages.kd import kd_problems

            out += kd_problems(cfg.kd, recipe, self.index, self.field("kd"), plan.task, default_from_earlier=True)
        return out + model_problems(cfg, plan.task, recipe.model, recipe.data, self.field)

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.finetune.api import finetune
        from edgetl.stages.kd import load_teacher, logit_cache_path
        from edgetl.train.loop import seed_everything

        cfg = self.config
        seed = ctx.recipe.seed + self.index
        seed_everything(seed)
        model, parent = ctx.current_model()
        data = ctx.data()
        teacher = teacher_name = None
        if cfg.kd is not None:
            teacher, teacher_name = load_teacher(ctx, cfg.kd.teacher)
        target = None
        if cfg.adapt is not None:
            from edgetl.data.datasets import load_target

            target = load_target(cfg.adapt.target)
        result = finetune(model, data, config=cfg, out=ctx.work_dir / "model", teacher=teacher, target=target,
                          seed=seed, progress=ctx.progress, kd_cache=logit_cache_path(ctx, cfg.kd, teacher_name or "", model),
                          field_prefix=f"stages.{self.index}.")
        m = result.metrics
        if teacher_name is not None:
            m["kd"]["teacher"] = teacher_name
        ctx.metrics.update(m)
        metrics = {"accuracy": m["best_eval_accuracy"], "accuracy_source": "torch eval during training"}
        if cfg.adapt is not None:  # adabn changes the model after training: its source accuracy is the one kept
            metrics = {"accuracy": m["adapt"]["source_accuracy"], "accuracy_source": "torch eval after adaptation",
                       "target_accuracy": m["adapt"]["target_accuracy"]}
        return [ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent, metrics=metrics,
            info={"params": m["total_params"], "trainable_params": m["trainable_params"],
                  "total_params": m["total_params"], "method": cfg.method, "trainable_percent": m["trainable_percent"],
                  "best_epoch": m["best_epoch"], "train_seconds": m["train_seconds"],
                  **({"kd_teacher": teacher_name} if teacher_name else {}),
                  **({"adapt": cfg.adapt.method} if cfg.adapt else {})},
        )]
