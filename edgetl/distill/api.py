"""`edgetl.distill`: train a student against a frozen teacher (logit KD, feature/hint KD, attention transfer).

Student: the model handed over (e.g. a pruned one), the teacher with transformer layers dropped
(`keep_layers`, DistilBERT-style, initialised from the teacher), or a zoo model (`student_model`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgetl.distill.config import DistillConfig
from edgetl.result import Result

log = logging.getLogger(__name__)


def distill(student: Any, teacher: Any, train: Any, eval_data: Any = None,
            config: DistillConfig | dict[str, Any] | None = None, out: str | Path | None = None, *,
            loss: Callable | None = None, metric: Callable | None = None, labels: list[str] | None = None,
            seed: int = 0, progress: Any = None, kd_cache: Path | Callable[[Any], Path] | None = None,
            field_prefix: str = "") -> Result:
    """Distil `teacher` into `student` (trained in place); save the student to the folder `out` if given.

    student: nn.Module, (nn.Module, preprocessing) or EdgeModel; None with `config.keep_layers` (the teacher
    with layers dropped) or `config.student_model` (a zoo model). teacher: the same forms, predicting the
    same labels; `config.kd.teacher` is a recipe's name for it and is not read here. train / eval_data: see
    edgetl.data.inputs. loss(logits, labels) replaces the hard-label cross-entropy that `kd.alpha` weighs;
    metric(logits, labels) replaces top-1 accuracy. kd_cache: the file of `kd.cache`'s teacher logits, or a
    function student -> file (the cached logits depend on the student's preprocessing).
    Returns Result(student, out folder, metrics) with the metrics report.json shows for a distill stage."""
    from edgetl.distill.kd import train_with_kd
    from edgetl.errors import RecipeError
    from edgetl.models.custom import edge_model
    from edgetl.models.encoder import layer_summary, sync_hf_config
    from edgetl.models.macs import model_macs
    from edgetl.train.inputs import prepare
    from edgetl.train.loop import evaluate

    cfg = config if isinstance(config, DistillConfig) else DistillConfig.model_validate(config or {})
    teacher, data = prepare(teacher, train, eval_data, labels=labels)
    if student is teacher or (getattr(student, "module", None) is teacher.module):
        raise RecipeError(f"{field_prefix}kd.teacher: the teacher is also the student, so there is nothing to distil "
                          "into", hint="set keep_layers or student_model, or distil into another (e.g. pruned) model")
    student, kind = _student(student, teacher, cfg, data, field_prefix)
    student = edge_model(student, label_names=teacher.label_names, task=data.task)
    if student.num_labels != teacher.num_labels:
        from edgetl.errors import ModelError

        raise ModelError(f"the student {student.source} predicts {student.num_labels} labels, the teacher "
                         f"{teacher.source} {teacher.num_labels}", hint="distil between models of the same labels")
    t_macs, t_params = model_macs(teacher)
    s_macs0, s_params0 = model_macs(student)
    acc_teacher = evaluate(teacher, data.eval, metric=metric)
    acc_student0 = evaluate(student, data.eval, metric=metric)
    settings = cfg.settings(seed)
    settings.loss, settings.metric = loss, metric
    cache = kd_cache(student) if callable(kd_cache) else kd_cache
    result, stats = train_with_kd(student, data, settings, cfg.kd, teacher, progress=progress,
                                  description=f"distill ({kind})", cache_path=cache, field_path=f"{field_prefix}kd")
    student.files = sync_hf_config(student.module, student.files)
    student.info.update({"distilled_from": teacher.source, "student": kind})
    macs, params = model_macs(student)
    if out is not None:
        from edgetl.models.base import save_model

        out = Path(out)
        save_model(student, out)
    text = student.task == "text"
    metrics = {
        "teacher": {"name": teacher.source, "accuracy": acc_teacher, "macs": t_macs, "params": t_params,
                    **({"structure": layer_summary(teacher.module)} if text else {})},
        "student": {"kind": kind, "accuracy_before": acc_student0, "accuracy": result.best_accuracy,
                    "macs": macs, "params": params, "macs_before": s_macs0, "params_before": s_params0,
                    **({"structure": layer_summary(student.module)} if text else {})},
        "accuracy_retained": result.best_accuracy / acc_teacher if acc_teacher else None,
        "macs_ratio_vs_teacher": macs / t_macs if t_macs else None,
        "best_epoch": result.best_epoch, "steps": result.steps, "train_seconds": result.seconds,
        "history": result.history, "kd": {"temperature": cfg.kd.temperature, "alpha": cfg.kd.alpha,
                                          "features": len(cfg.kd.features), "attention": cfg.kd.attention is not None,
                                          **stats},
    }
    return Result(student, out, metrics)


def _student(student: Any, teacher: Any, cfg: DistillConfig, data: Any, field_prefix: str) -> tuple[Any, str]:
    """The student and its kind: `layer_dropped`, `zoo`, or `current` (the one handed over)."""
    from edgetl.errors import RecipeError

    made = "keep_layers" if cfg.keep_layers is not None else "student_model" if cfg.student_model else None
    if student is not None and made:
        raise RecipeError(f"{field_prefix}{made}: set, and a student was handed over too; pass student=None to "
                          f"build it from {made}, or drop {made}")
    if cfg.keep_layers is not None:
        from edgetl.distill.students import drop_layers

        return drop_layers(teacher, cfg.keep_layers, f"{field_prefix}keep_layers"), "layer_dropped"
    if cfg.student_model is not None:
        from edgetl.models.zoo import load_source
        from edgetl.recipe.schema import ModelConfig

        mc = ModelConfig(source=cfg.student_model, input_size=cfg.student_input_size,
                         max_length=teacher.preprocessing.max_length)
        return load_source(mc, data.task, data.label_names), "zoo"
    if student is None:
        raise RecipeError("distill needs a student: pass one, or set keep_layers or student_model in the config")
    return student, "current"
