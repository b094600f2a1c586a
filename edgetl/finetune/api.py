"""`edgetl.finetune`: transfer learning of a model onto labelled data.

`method` picks which parameters train: `full` (all, with optional layer-wise learning rates, gradual
unfreezing, BatchNorm policy and image augmentation), `linear_probe` (only the head, on cached backbone
features by default), `lora` (peft LoRA, merged before the model is handed back) or `adapter` (bottleneck
adapters that stay in the model). `forgetting` adds EWC or LwF, `kd` distillation from a teacher, `adapt`
unsupervised domain adaptation to the deployment site's unlabelled inputs. The methods are in methods.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgetl.finetune.config import FinetuneConfig
from edgetl.result import Result

log = logging.getLogger(__name__)


def finetune(model: Any, train: Any, eval_data: Any = None, config: FinetuneConfig | dict[str, Any] | None = None,
             out: str | Path | None = None, *, teacher: Any = None, target: Any = None,
             loss: Callable | None = None, metric: Callable | None = None, labels: list[str] | None = None,
             seed: int = 0, progress: Any = None, kd_cache: Path | None = None, field_prefix: str = "") -> Result:
    """Fine-tune `model` in place by `config.method`; save it to the folder `out` if given.

    model: nn.Module, (nn.Module, preprocessing) or EdgeModel, its head sized for the labels. train /
    eval_data: see edgetl.data.inputs. teacher: for `config.kd`, a model predicting the same labels.
    target: for `config.adapt`, the deployment site's data: unlabelled inputs, (inputs, labels) whose labels
    only serve the target accuracy, or a TargetData; default: loaded from `config.adapt.target`.
    loss(logits, labels) and metric(logits, labels) replace cross-entropy and top-1 accuracy (the metrics'
    accuracy keys then hold the metric). Returns Result(model, out folder, metrics) with the metrics
    report.json shows for a finetune stage."""
    from edgetl.errors import RecipeError
    from edgetl.finetune.checks import option_problems
    from edgetl.finetune.methods import run_method
    from edgetl.models.custom import edge_model
    from edgetl.train.inputs import prepare
    from edgetl.train.loop import evaluate

    cfg = config if isinstance(config, FinetuneConfig) else FinetuneConfig.model_validate(config or {})
    model, data = prepare(model, train, eval_data, labels=labels)
    problems = option_problems(cfg, data.task, lambda name: f"{field_prefix}{name}")
    if problems:
        raise RecipeError(f"the fine-tuning config has {len(problems)} problem(s)", problems=problems)
    if cfg.kd is not None and teacher is None:
        raise RecipeError(f"{field_prefix}kd: set, but no teacher was given", hint="pass teacher=<a model fine-tuned "
                          "on the same labels>, or drop kd")
    teacher = edge_model(teacher, label_names=model.label_names, task=data.task) if cfg.kd is not None else None
    before = evaluate(model, data.eval, metric=metric)
    adapt_facts = None
    if cfg.adapt is None:
        outcome = run_method(cfg, model, data, seed, progress=progress, teacher=teacher, kd_cache=kd_cache,
                             loss=loss, metric=metric)
    else:
        from edgetl.finetune.domain import run_adapted

        site = _target_data(target, cfg, data)
        outcome, adapt_facts = run_adapted(
            cfg, model, data, site, seed,
            train=lambda c, m: run_method(c, m, data, seed, progress=progress, teacher=teacher, kd_cache=kd_cache,
                                          target_inputs=site.inputs, loss=loss, metric=metric))
        outcome.facts["adapt"] = adapt_facts
    if teacher is not None:
        outcome.facts.setdefault("kd", {})["teacher"] = teacher.source
    result = outcome.result
    total = model.parameter_count()
    trainable = outcome.trainable
    model.info.update({"finetune_method": cfg.method})
    if out is not None:
        from edgetl.models.base import save_model

        out = Path(out)
        save_model(model, out)
    metrics = {
        "method": cfg.method, "eval_accuracy_before": before, "best_eval_accuracy": result.best_accuracy,
        "best_epoch": result.best_epoch, "train_seconds": result.seconds, "steps": result.steps,
        "history": result.history, "trainable_params": trainable, "total_params": total,
        "trainable_percent": round(100.0 * trainable / max(total, 1), 4), **outcome.facts,
    }
    return Result(model, out, metrics)


def _target_data(target: Any, cfg: FinetuneConfig, data: Any) -> Any:
    """The adaptation target as TargetData: as given, from inputs (with labels for target accuracy), or loaded
    from `config.adapt.target`."""
    import numpy as np

    from edgetl.data.datasets import Split, TargetData, load_target
    from edgetl.data.inputs import as_split

    if target is None:
        return load_target(cfg.adapt.target)  # type: ignore[union-attr]  # (called with adapt set)
    if isinstance(target, TargetData):
        return target
    if isinstance(target, (list, np.ndarray)) or hasattr(target, "detach"):
        unlabelled = as_split((target, np.zeros(len(target), dtype=np.int64)), "target")
        return TargetData(unlabelled.inputs, None, None, "python")
    split = target if isinstance(target, Split) else as_split(target, "target")
    return TargetData(split.inputs, split, list(data.label_names), "python")
