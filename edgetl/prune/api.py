"""`edgetl.prune`: structured pruning to a budget (MACs, params, or latency measured in ONNX Runtime), in
aligned iterative steps with optional recovery between them, then a recovery fine-tune (with KD if `kd:`
is set).

The budget search prunes in small scheduled increments (`search_steps`) and stops at the first increment
that meets the budget; `steps` splits the way there into rounds, with `step_recovery_steps` of training after
each round. A budget that cannot be met within `max_layer_ratio` raises PruneError with the values reached,
or (`on_budget_miss: keep`) keeps the model and records `budget_met: false`.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgetl.prune.config import PruneConfig
from edgetl.result import Result

log = logging.getLogger(__name__)
BN_RECALIBRATION_SEED = 1  # seed offset of the batches BatchNorm statistics are re-estimated on


def prune(model: Any, train: Any, eval_data: Any = None, config: PruneConfig | dict[str, Any] | None = None,
          out: str | Path | None = None, *, teacher: Any = None, loss: Callable | None = None,
          metric: Callable | None = None, labels: list[str] | None = None, seed: int = 0, progress: Any = None,
          kd_cache: Path | None = None, field_prefix: str = "") -> Result:
    """Prune `model` in place to `config.target` and recover it; save it to the folder `out` if given.

    model: nn.Module, (nn.Module, preprocessing) or EdgeModel. train / eval_data: see edgetl.data.inputs.
    teacher: for `config.kd`, an EdgeModel / nn.Module or a function returning one (called only when recovery
    trains); default a copy of the model before pruning. loss(logits, labels) and metric(logits, labels)
    replace cross-entropy and top-1 accuracy (the metrics' "accuracy" keys then hold the metric).
    kd_cache: file of the teacher-logit cache (`kd.cache`). field_prefix: prefixed to config field names in
    error messages (the recipe stage passes `stages.N.`).
    Returns Result(model, out folder, metrics) with the metrics report.json shows for a prune stage."""
    from edgetl.errors import EdgetlError, RecipeError
    from edgetl.models.encoder import layer_summary, sync_hf_config
    from edgetl.models.macs import model_macs
    from edgetl.prune.structured import PruneError, StructuredPruner, layer_widths, taylor_gradients
    from edgetl.train.inputs import prepare
    from edgetl.train.loop import evaluate

    if config is None:
        raise RecipeError("prune needs a config with a target, e.g. PruneConfig(target={'macs_ratio': 0.5})")
    cfg = config if isinstance(config, PruneConfig) else PruneConfig.model_validate(config)
    model, data = prepare(model, train, eval_data, labels=labels)
    # a bare nn.Module cannot be rebuilt from its folder: a copy of the unpruned one proves the saved widths
    fresh = copy.deepcopy(model.module) if out is not None and model.builder.get("kind") == "module" else None
    snapshot = copy.deepcopy(model) if cfg.kd is not None and teacher is None else None
    macs0, params0 = model_macs(model)
    widths0 = layer_widths(model.module)
    structure0 = layer_summary(model.module)
    acc0 = evaluate(model, data.eval, metric=metric)
    probe = None
    if cfg.measure_latency:
        from edgetl.prune.latency import LatencyProbe

        probe = LatencyProbe(model, data.eval.inputs, threads=cfg.latency_threads,
                             iterations=cfg.latency_iterations, seed=seed)
    try:
        fixed = cfg.target.kind == "ratio"
        gradient_fn = (taylor_gradients(model, data.train, cfg.taylor_batches, cfg.batch_size, seed, loss)
                       if cfg.importance == "taylor" else None)
        try:
            pruner = StructuredPruner(
                model, importance=cfg.importance, global_pruning=cfg.scope == "global",
                pruning_ratio=cfg.target.ratio if cfg.target.ratio is not None else cfg.max_layer_ratio,
                head_ratio=cfg.head_ratio,
                steps=cfg.steps if fixed else cfg.search_steps, round_to=cfg.round_to,
                max_layer_ratio=cfg.max_layer_ratio, ignored=cfg.ignored_layers, heads=cfg.heads, ffn=cfg.ffn,
                gradient_fn=gradient_fn, protect=cfg.protect == "auto",
            )
        except EdgetlError:
            raise
        except Exception as exc:  # torch-pruning could not trace the user's model: say which and why
            raise PruneError(f"torch-pruning cannot build the dependency graph of {model.source}: "
                             f"{type(exc).__name__}: {exc}",
                             hint="structured pruning supports CNNs (Conv2d/BatchNorm/Linear) and BERT-family "
                                  "transformers; see docs/api.md") from exc
        if pruner.protected:
            log.info("prune: kept at full width (protect: auto): %s", ", ".join(pruner.protected))
        teachers = _Teacher(teacher, snapshot)

        def recover(settings, description: str) -> tuple[Any, dict[str, Any]]:
            from edgetl.distill.kd import train_with_kd

            settings.loss, settings.metric = loss, metric
            t = teachers.get() if cfg.kd is not None else None
            return train_with_kd(model, data, settings, cfg.kd, t, progress=progress, description=description,
                                 cache_path=kd_cache, field_path=f"{field_prefix}kd")

        history, met, last_latency = _search(model, data, cfg, pruner, probe, recover, seed, macs0, params0)
        macs1, params1 = model_macs(model)
        if macs1 >= macs0:
            raise PruneError(
                f"pruning removed nothing: MACs {macs0:,} before and {macs1:,} after {pruner.done} increments",
                hint="check ignored_layers (everything prunable may be ignored) and that the model's parameters "
                     "require grad",
            )
        kind = cfg.target.kind
        budget = {"kind": kind, "target": getattr(cfg.target, kind), "met": met, "increments": pruner.done,
                  "reached": (last_latency["p50_ms"] if kind == "latency_ms" and last_latency
                              else (macs1 / macs0 if kind == "macs_ratio" else params1 / params0
                                    if kind == "params_ratio" else cfg.target.ratio))}
        if not met:
            msg = (f"{field_prefix}target: budget {kind} <= {budget['target']} not met: reached "
                   f"{budget['reached']:.4g} (MACs {macs1 / macs0:.1%}, params {params1 / params0:.1%}) after "
                   f"{pruner.done} increments with max_layer_ratio {cfg.max_layer_ratio}")
            if cfg.on_budget_miss == "error":
                raise PruneError(msg, hint="relax the budget, raise max_layer_ratio, or set on_budget_miss: keep "
                                           "to keep the model and report the miss")
            log.warning("%s; keeping the model (on_budget_miss: keep)", msg)
        acc_pruned, acc_final, recovery_info = _final_recovery(model, data, cfg, recover, seed, metric)
        if cfg.kd is not None and recovery_info["ran"]:
            recovery_info["teacher"] = teachers.name
        latency_after = probe.measure(model) if probe is not None else None
    finally:
        if probe is not None:
            probe.close()
    for p in model.module.parameters():
        p.requires_grad_(True)
    model.files = sync_hf_config(model.module, model.files)
    widths1 = layer_widths(model.module)
    model.info.update({"pruned": {"macs_ratio": macs1 / macs0, "params_ratio": params1 / params0,
                                  "importance": cfg.importance, "scope": cfg.scope, "round_to": cfg.round_to}})
    if out is not None:
        from edgetl.models.base import save_model

        out = Path(out)
        save_model(model, out)
        check_reload(model, out, data, fresh)
    before = {"macs": macs0, "params": params0, "accuracy": acc0, "size_bytes": None,
              "latency_p50_ms": latency_after["reference_p50_ms"] if latency_after else None}
    after = {"macs": macs1, "params": params1, "accuracy_after_pruning": acc_pruned, "accuracy": acc_final,
             "latency_p50_ms": latency_after["p50_ms"] if latency_after else None}
    changed = {k: {"before": widths0[k], "after": widths1.get(k)} for k in widths0 if widths1.get(k) != widths0[k]}
    metrics = {
        "before": before, "after": after, "macs_ratio": macs1 / macs0, "params_ratio": params1 / params0,
        "speedup_onnx_fp32": latency_after["speedup"] if latency_after else None,
        "latency_backend": "ort-cpu" if latency_after else None, "latency_threads": cfg.latency_threads,
        "budget": budget, "budget_met": met, "history": history, "recovery": recovery_info,
        "protected_layers": pruner.protected,
        "widths_before": widths0, "widths_after": widths1, "widths_changed": changed,
        "structure_before": structure0, "structure_after": layer_summary(model.module),
    }
    return Result(model, out, metrics)


class _Teacher:
    """The KD teacher, resolved on first use: the one given (or a function returning it), else the snapshot."""

    def __init__(self, given: Any, snapshot: Any):
        self.given, self.snapshot = given, snapshot
        self.model: Any = None
        self.name: str | None = None

    def get(self) -> Any:
        if self.model is None:
            from edgetl.models.custom import edge_model

            if self.given is None:
                self.model, self.name = self.snapshot, "model before pruning"
            else:
                given = self.given() if callable(self.given) and not hasattr(self.given, "forward") else self.given
                self.model = edge_model(given)
                self.name = self.model.source
        return self.model


def _search(model, data, cfg: PruneConfig, pruner, probe, recover, seed: int, macs0: int, params0: int):
    """Prune increment by increment until the budget is met (or nothing is left to prune)."""
    from edgetl.models.macs import model_macs
    from edgetl.prune.structured import recalibrate_batchnorm

    target, kind = cfg.target, cfg.target.kind
    fixed = kind == "ratio"

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
    return history, met, last_latency


def _final_recovery(model, data, cfg: PruneConfig, recover, seed: int, metric) -> tuple[float, float, dict[str, Any]]:
    """BatchNorm recalibration, then the recovery fine-tune (if on): accuracy after pruning, final accuracy
    and the recovery record."""
    from edgetl.prune.structured import recalibrate_batchnorm
    from edgetl.train.loop import evaluate

    recalibrate_batchnorm(model, data.train, cfg.bn_recalibration_batches, cfg.batch_size, seed)
    acc_pruned = evaluate(model, data.eval, metric=metric)
    if not cfg.recovery:
        return acc_pruned, acc_pruned, {"ran": False}
    result, stats = recover(cfg.settings(seed), "prune recovery" + (" (KD)" if cfg.kd else ""))
    acc_final = result.best_accuracy
    if recalibrate_batchnorm(model, data.train, cfg.bn_recalibration_batches, cfg.batch_size, seed + BN_RECALIBRATION_SEED):
        bn = {"accuracy_before_bn_recalibration": acc_final, "bn_recalibrated": True}
        acc_final = evaluate(model, data.eval, metric=metric)
    else:
        bn = {"bn_recalibrated": False}
    info = {"ran": True, "best_eval_accuracy": result.best_accuracy, "steps": result.steps,
            "train_seconds": result.seconds, "history": result.history, **stats, **bn}
    return acc_pruned, acc_final, info


def check_reload(model, folder: Path, data, module: Any = None) -> None:
    """The saved files rebuild the pruned model exactly (same logits on real eval examples). `module`: a fresh
    instance of the architecture, for a model edgetl cannot rebuild by itself (an nn.Module it was handed)."""
    import numpy as np

    from edgetl.errors import ModelError
    from edgetl.models.base import load_model
    from edgetl.train.loop import predict_logits

    raw = data.eval.inputs[:8]
    again = load_model(folder, module=module)
    diff = float(np.abs(predict_logits(again, raw) - predict_logits(model, raw)).max())
    if not diff <= 1e-4:  # NaN too: a model that gives NaN cannot be shown to reload exactly
        raise ModelError(f"the saved pruned model does not reload to the same model (max |logit diff| {diff:.3g})",
                         hint="this is an edgetl bug: please report it with the recipe")
