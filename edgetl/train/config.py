"""Optimisation settings shared by every technique that trains (fine-tuning, pruning recovery, distillation,
QAT). Light (pydantic only): technique configs and recipe stages both build on it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgetl.recipe.schema import StrictModel


class TrainingFields(StrictModel):
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
