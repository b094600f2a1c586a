"""Configuration of structured pruning (`edgetl.prune`, the `prune` recipe stage). Light: pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgetl.distill.config import KDConfig
from edgetl.recipe.schema import StrictModel
from edgetl.train.config import TrainingFields


class PruneTarget(StrictModel):
    """Exactly one budget."""

    macs_ratio: float | None = Field(None, gt=0, lt=1, description="Keep at most this share of the MACs (0.5 = half).")
    params_ratio: float | None = Field(None, gt=0, lt=1, description="Keep at most this share of the parameters.")
    latency_ms: float | None = Field(
        None, gt=0, description="p50 latency (ms) to reach, measured in ONNX Runtime CPU after each pruning increment."
    )
    ratio: float | None = Field(
        None, gt=0, lt=1,
        description="No search: remove this share of each prunable group's channels (and of attention heads).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PruneTarget:
        set_ = [k for k in ("macs_ratio", "params_ratio", "latency_ms", "ratio") if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(f"set exactly one of macs_ratio, params_ratio, latency_ms, ratio (got {set_ or 'none'}), "
                             "e.g. `target: {macs_ratio: 0.5}`")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("macs_ratio", "params_ratio", "latency_ms", "ratio") if getattr(self, k) is not None)


class PruneConfig(TrainingFields):
    """The budget, how channels are ranked and removed, and the recovery training (the TrainingFields)."""

    target: PruneTarget = Field(description="The budget: one of macs_ratio, params_ratio, latency_ms, ratio.")
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = Field(
        "l2", description="How channels are ranked: weight magnitude (l1/l2), BatchNorm scale, or Taylor (grad x weight).")
    scope: Literal["per_layer", "global"] = Field(
        "per_layer", description="Rank channels within each layer (uniform widths) or across the whole model.")
    round_to: int | None = Field(
        8, ge=1, le=256, description="Keep channel counts multiples of this (unaligned widths lose the speed-up); null: off.")
    steps: int = Field(1, ge=1, le=50, description="Rounds to reach the budget in (iterative pruning).")
    search_steps: int = Field(
        40, ge=2, le=400, description="Increments the budget search moves in (finer: closer to the budget, slower).")
    max_layer_ratio: float = Field(
        0.9, gt=0, lt=1, description="Largest share of any one layer's channels that may be removed.")
    ignored_layers: list[str] = Field(
        default_factory=list,
        description="Module names never pruned (globs allowed: `features.*.conv.2`); the classification head never is.")
    protect: Literal["auto", "none"] = Field(
        "auto", description="CNNs: `auto` keeps the stem and inverted-residual projections (1x1 after a depthwise "
                            "conv) at full width, found on the dependency graph, and prunes the width inside blocks; "
                            "`none`: only the head and ignored_layers are kept.")
    heads: bool = Field(True, description="Transformers: prune whole attention heads.")
    ffn: bool = Field(True, description="Transformers: prune FFN (intermediate) neurons.")
    head_ratio: float | None = Field(
        None, ge=0, lt=1, description="Transformers: share of heads to remove (default: the channel ratio).")
    taylor_batches: int = Field(4, ge=1, le=1000, description="Training batches whose gradients feed Taylor importance.")
    bn_recalibration_batches: int = Field(
        10, ge=0, le=10000,
        description="Training batches that re-estimate BatchNorm statistics after pruning and after recovery "
                    "(stale statistics wreck a pruned CNN's eval accuracy); 0: off. No effect without BatchNorm.")
    step_recovery_steps: int = Field(
        0, ge=0, le=100000, description="Optimizer steps of recovery training after each round but the last (0: none).")
    recovery: bool = Field(True, description="Fine-tune after pruning with the training fields of this stage.")
    kd: KDConfig | None = Field(
        None, description="Distil during recovery (default teacher: the model before pruning). Off unless set.")
    measure_latency: bool = Field(
        True, description="Measure ONNX Runtime latency before, after each round, and after pruning.")
    latency_threads: int = Field(2, ge=1, le=256, description="intra-op threads of the latency measurement.")
    latency_iterations: int = Field(60, ge=10, le=100000, description="Timed iterations per latency measurement.")
    on_budget_miss: Literal["error", "keep"] = Field(
        "error", description="If the budget cannot be met: stop with an error, or keep the model and report it.")
