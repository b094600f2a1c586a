"""`finetune`: transfer learning of the source model onto the target data."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import StageConfig
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class TrainingFields(StageConfig):
    """Optimisation settings shared by every stage that trains."""

    epochs: float = Field(1.0, gt=0, le=1000, description="Passes over the training data (fractions allowed).")
    batch_size: int = Field(32, ge=1, le=4096, description="Examples per optimizer step (before accumulation).")
    lr: float = Field(1e-3, gt=0, le=1, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW decoupled weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear learning-rate warm-up.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate decay after warm-up.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this value (null: no clipping).")
    grad_accum: int = Field(1, ge=1, le=1024, description="Accumulate gradients over this many batches per step.")
    early_stopping: int | None = Field(None, ge=1, description="Stop after this many epochs without eval improvement.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (for quick runs).")

    def settings(self, seed: int):
        from edgetl.train.loop import TrainSettings

        return TrainSettings(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            warmup_ratio=self.warmup_ratio, schedule=self.schedule, label_smoothing=self.label_smoothing,
            grad_clip=self.grad_clip, grad_accum=self.grad_accum, early_stopping=self.early_stopping,
            max_steps=self.max_steps, seed=seed,
        )


class FinetuneConfig(TrainingFields):
    type: Literal["finetune"] = Field(description="Fine-tune the current model on the target data.")
    method: Literal["full"] = Field("full", description="`full`: every weight trains.")


class FinetuneStage(Stage):
    type = "finetune"
    Config = FinetuneConfig
    default_name = "finetuned"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        plan.available.append(("pytorch", "fp32"))
        return []

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.models.base import save_model
        from edgetl.train.loop import Trainer, evaluate, seed_everything

        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        seed_everything(ctx.recipe.seed + self.index)
        model, parent = ctx.current_model()
        data = ctx.data()
        before = evaluate(model, data.eval)
        for p in model.module.parameters():
            p.requires_grad_(True)
        trainer = Trainer(model, data.train, data.eval, cfg.settings(ctx.recipe.seed + self.index),
                          progress=ctx.progress, description="finetune")
        result = trainer.fit()
        total = model.parameter_count()
        trainable = model.trainable_parameter_count()
        model.info.update({"finetune_method": cfg.method})
        save_model(model, ctx.work_dir / "model")
        ctx.metrics.update({
            "method": cfg.method, "eval_accuracy_before": before, "best_eval_accuracy": result.best_accuracy,
            "best_epoch": result.best_epoch, "train_seconds": result.seconds, "steps": result.steps,
            "history": result.history, "trainable_params": trainable, "total_params": total,
        })
        return [ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent,
            metrics={"accuracy": result.best_accuracy, "accuracy_source": "torch eval during training"},
            info={"params": total, "trainable_params": trainable, "total_params": total, "method": cfg.method,
                  "best_epoch": result.best_epoch, "train_seconds": result.seconds},
        )]
