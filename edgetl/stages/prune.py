"""`prune`: structured pruning to a budget (MACs, params, or latency measured in ONNX Runtime), in aligned
iterative steps with optional recovery between them, then a recovery fine-tune (with KD if `kd:` is set).

The budget search prunes in small scheduled increments (`search_steps`) and stops at the first increment
that meets the budget; `steps` splits the way there into rounds, with `step_recovery_steps` of training after
each round. A budget that cannot be met within `max_layer_ratio` stops the stage with the values reached,
or (`on_budget_miss: keep`) keeps the model and records `budget_met: false`.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, Literal

from pydantic import Field, model_validator

from edgetl.distill.config import KDConfig
from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import StrictModel
from edgetl.stages.base import PlanState, Stage, StageContext
from edgetl.stages.finetune import TrainingFields

log = logging.getLogger(__name__)


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
    type: Literal["prune"] = Field(description="Structured pruning (channels / heads / FFN neurons) to a budget.")
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


class PruneStage(Stage):
    type = "prune"
    Config = PruneConfig
    default_name = "pruned"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.distill.kd import kd_problems

        cfg: PruneConfig = self.config  # type: ignore[assignment]
        problems = []
        if not plan.has("pytorch"):
            problems.append(f"{self.field('type')}: prune needs a PyTorch model before it")
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
        from edgetl.models.base import save_model
        from edgetl.models.macs import model_macs
        from edgetl.prune.structured import (
            StructuredPruner,
            layer_widths,
            recalibrate_batchnorm,
            taylor_gradients,
        )
        from edgetl.prune.transformer import layer_summary, sync_hf_config
        from edgetl.train.loop import evaluate, seed_everything

        cfg: PruneConfig = self.config  # type: ignore[assignment]
        seed = ctx.recipe.seed + self.index
        seed_everything(seed)
        model, parent = ctx.current_model()
        data = ctx.data()
        snapshot = copy.deepcopy(model) if cfg.kd is not None and cfg.kd.teacher is None else None
        macs0, params0 = model_macs(model)
        widths0 = layer_widths(model.module)
        structure0 = layer_summary(model.module)
        acc0 = evaluate(model, data.eval)
        probe = None
        if cfg.measure_latency:
            from edgetl.prune.latency import LatencyProbe

            probe = LatencyProbe(model, data.eval.inputs, threads=cfg.latency_threads,
                                 iterations=cfg.latency_iterations, seed=seed)
        target = cfg.target
        kind = target.kind
        fixed = kind == "ratio"
        gradient_fn = (taylor_gradients(model, data.train, cfg.taylor_batches, cfg.batch_size, seed)
                       if cfg.importance == "taylor" else None)
        pruner = StructuredPruner(
            model, importance=cfg.importance, global_pruning=cfg.scope == "global",
            pruning_ratio=target.ratio if fixed else cfg.max_layer_ratio, head_ratio=cfg.head_ratio,
            steps=cfg.steps if fixed else cfg.search_steps, round_to=cfg.round_to,
            max_layer_ratio=cfg.max_layer_ratio, ignored=cfg.ignored_layers, heads=cfg.heads, ffn=cfg.ffn,
            gradient_fn=gradient_fn, protect=cfg.protect == "auto",
        )
        if pruner.protected:
            log.info("prune: kept at full width (protect: auto): %s", ", ".join(pruner.protected))
        teacher_cache: dict[str, Any] = {}

        def teacher():
            if "model" not in teacher_cache:
                from edgetl.distill.kd import load_teacher

                teacher_cache["model"], teacher_cache["name"] = load_teacher(
                    ctx, cfg.kd.teacher, snapshot, f"{parent or ctx.recipe.model.source} (before pruning)")
            return teacher_cache["model"]

        def recover(settings, description: str) -> tuple[Any, dict[str, Any]]:
            from edgetl.distill.kd import train_with_kd

            t = teacher() if cfg.kd is not None else None
            return train_with_kd(model, data, settings, cfg.kd, t, progress=ctx.progress, description=description,
                                 cache_path=self._cache_path(ctx, parent), field_path=self.field("kd"))

        def goal(k: int) -> float:  # MACs / params ratio to reach by the end of round k (geometric schedule)
            final = getattr(target, kind)
            return final ** (min(k, cfg.steps) / cfg.steps)

        per_round = max(1, math.ceil(cfg.search_steps / cfg.steps))
        history: list[dict[str, Any]] = []
        rnd, met, last_latency = 1, False, None
        while not pruner.exhausted:
            pruner.step()
            macs, params = model_macs(model)
            rec: dict[str, Any] = {"increment": pruner.done, "macs": macs, "params": params,
                                   "macs_ratio": macs / macs0, "params_ratio": params / params0}
            if kind == "latency_ms":
                last_latency = probe.measure(model)
                rec["latency"] = last_latency
                met = last_latency["p50_ms"] <= target.latency_ms
                round_end = met or pruner.done % per_round == 0
            elif fixed:
                met = pruner.exhausted
                round_end = True
            else:
                value = rec[kind]
                met = value <= getattr(target, kind) + 1e-9
                round_end = met or value <= goal(rnd) + 1e-9
            if round_end:
                rec["round"] = rnd
                recalibrate_batchnorm(model, data.train, cfg.bn_recalibration_batches, cfg.batch_size, seed + rnd)
                if probe is not None and kind != "latency_ms":
                    last_latency = probe.measure(model)
                    rec["latency"] = last_latency
                log.info("prune round %d (increment %d): MACs %.1f %%, params %.1f %%%s", rnd, pruner.done,
                         100 * rec["macs_ratio"], 100 * rec["params_ratio"],
                         f", p50 {last_latency['p50_ms']:.2f} ms ({last_latency['speedup']:.2f}x)" if last_latency else "")
                if not met and cfg.step_recovery_steps:
                    settings = cfg.settings(seed + rnd)
                    settings.max_steps = cfg.step_recovery_steps
                    res, _ = recover(settings, f"prune round {rnd} recovery")
                    rec["accuracy_after_recovery"] = res.best_accuracy
                rnd += 1
            history.append(rec)
            if met:
                break
        macs1, params1 = model_macs(model)
        if macs1 >= macs0:
            from edgetl.prune.structured import PruneError

            if probe is not None:
                probe.close()
            raise PruneError(
                f"pruning removed nothing: MACs {macs0:,} before and {macs1:,} after {pruner.done} increments",
                hint="check ignored_layers (everything prunable may be ignored) and that the model's parameters "
                     "require grad",
            )
        budget = {"kind": kind, "target": getattr(target, kind), "met": met, "increments": pruner.done,
                  "reached": (last_latency["p50_ms"] if kind == "latency_ms" and last_latency
                              else (macs1 / macs0 if kind == "macs_ratio" else params1 / params0 if kind == "params_ratio"
                                    else target.ratio))}
        if not met:
            msg = (f"{self.field('target')}: budget {kind} <= {budget['target']} not met: reached {budget['reached']:.4g} "
                   f"(MACs {macs1 / macs0:.1%}, params {params1 / params0:.1%}) after {pruner.done} increments "
                   f"with max_layer_ratio {cfg.max_layer_ratio}")
            if cfg.on_budget_miss == "error":
                from edgetl.prune.structured import PruneError

                if probe is not None:
                    probe.close()
                raise PruneError(msg, hint="relax the budget, raise max_layer_ratio, or set on_budget_miss: keep "
                                           "to keep the model and report the miss")
            log.warning("%s; keeping the model (on_budget_miss: keep)", msg)
        recalibrate_batchnorm(model, data.train, cfg.bn_recalibration_batches, cfg.batch_size, seed)
        acc_pruned = evaluate(model, data.eval)
        recovery_info: dict[str, Any] = {"ran": False}
        acc_final = acc_pruned
        if cfg.recovery:
            result, stats = recover(cfg.settings(seed), "prune recovery" + (" (KD)" if cfg.kd else ""))
            acc_final = result.best_accuracy
            if recalibrate_batchnorm(model, data.train, cfg.bn_recalibration_batches, cfg.batch_size, seed + 1):
                acc_recal = evaluate(model, data.eval)
                recovery_info_bn = {"accuracy_before_bn_recalibration": acc_final, "bn_recalibrated": True}
                acc_final = acc_recal
            else:
                recovery_info_bn = {"bn_recalibrated": False}
            recovery_info = {"ran": True, "best_eval_accuracy": result.best_accuracy, "steps": result.steps,
                             "train_seconds": result.seconds, "history": result.history, **stats, **recovery_info_bn}
            if cfg.kd is not None:
                recovery_info["teacher"] = teacher_cache.get("name")
        latency_after = probe.measure(model) if probe is not None else None
        if probe is not None:
            probe.close()
        for p in model.module.parameters():
            p.requires_grad_(True)
        model.files = sync_hf_config(model.module, model.files)
        widths1 = layer_widths(model.module)
        model.info.update({"pruned": {"macs_ratio": macs1 / macs0, "params_ratio": params1 / params0,
                                      "importance": cfg.importance, "scope": cfg.scope, "round_to": cfg.round_to}})
        folder = ctx.work_dir / "model"
        save_model(model, folder)
        self._check_reload(model, folder, data)
        parent_art = ctx.artifacts.get(parent) if parent else None
        before = {"macs": macs0, "params": params0, "accuracy": acc0,
                  "size_bytes": parent_art.size_bytes if parent_art else None,
                  "latency_p50_ms": latency_after["reference_p50_ms"] if latency_after else None}
        after = {"macs": macs1, "params": params1, "accuracy_after_pruning": acc_pruned, "accuracy": acc_final,
                 "latency_p50_ms": latency_after["p50_ms"] if latency_after else None}
        changed = {k: {"before": widths0[k], "after": widths1.get(k)} for k in widths0 if widths1.get(k) != widths0[k]}
        ctx.metrics.update({
            "before": before, "after": after, "macs_ratio": macs1 / macs0, "params_ratio": params1 / params0,
            "speedup_onnx_fp32": latency_after["speedup"] if latency_after else None,
            "latency_backend": "ort-cpu" if latency_after else None, "latency_threads": cfg.latency_threads,
            "budget": budget, "budget_met": met, "history": history, "recovery": recovery_info,
            "protected_layers": pruner.protected,
            "widths_before": widths0, "widths_after": widths1, "widths_changed": changed,
            "structure_before": structure0, "structure_after": layer_summary(model.module),
        })
        art = ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent,
            metrics={"accuracy": acc_final, "accuracy_source": "torch eval after prune recovery"},
            info={"params": params1, "macs": macs1, "macs_ratio": macs1 / macs0, "params_ratio": params1 / params0,
                  "method": f"prune-{cfg.importance}" + ("+kd" if cfg.kd and cfg.recovery else ""), "budget_met": met},
        )
        after["size_bytes"] = art.size_bytes
        return [art]

    def _cache_path(self, ctx: StageContext, parent: str | None):
        from edgetl.distill.kd import logit_cache_path

        cfg: PruneConfig = self.config  # type: ignore[assignment]
        if cfg.kd is None:
            return None
        return logit_cache_path(ctx, cfg.kd, cfg.kd.teacher or parent or ctx.recipe.model.source)

    @staticmethod
    def _check_reload(model, folder, data) -> None:
        """The saved files rebuild the pruned model exactly (same logits on real eval examples)."""
        import numpy as np

        from edgetl.errors import ModelError
        from edgetl.models.base import load_model
        from edgetl.train.loop import predict_logits

        raw = data.eval.inputs[:8]
        again = load_model(folder)
        diff = float(np.abs(predict_logits(again, raw) - predict_logits(model, raw)).max())
        if not diff <= 1e-4:  # NaN too: a model that gives NaN cannot be shown to reload exactly
            raise ModelError(f"the saved pruned model does not reload to the same model (max |logit diff| {diff:.3g})",
                             hint="this is an edgetl bug: please report it with the recipe")
