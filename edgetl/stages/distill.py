"""`distill`: train a student against a frozen teacher (logit KD, feature/hint KD, attention transfer).

Student: the current model (e.g. a pruned one), the teacher with transformer layers dropped
(`keep_layers`, DistilBERT-style, initialised from the teacher), or another zoo model (`student_model`).
Teacher: `kd.teacher` (an earlier artifact or a model folder), by default the newest fine-tuned model.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgetl.distill.config import KDConfig
from edgetl.errors import shown
from edgetl.pipeline.artifacts import Artifact, stable_hash
from edgetl.stages.base import PlanState, Stage, StageContext
from edgetl.stages.finetune import TrainingFields

log = logging.getLogger(__name__)


class DistillConfig(TrainingFields):
    type: Literal["distill"] = Field(description="Knowledge distillation from a teacher into a student.")
    keep_layers: list[int] | None = Field(
        None, min_length=1,
        description="Student = the teacher keeping only these transformer layers (e.g. [0, 2, 4]), initialised from it.",
    )
    student_model: str | None = Field(
        None, description="Student = this zoo model (e.g. mobilenet_v2 under an efficientnet_lite2 teacher).")
    student_input_size: int | None = Field(
        None, ge=16, le=1024, description="student_model: its input size (default: the zoo model's own).")
    kd: KDConfig = Field(default_factory=KDConfig, description="Teacher and distillation losses.")

    @field_validator("keep_layers")
    @classmethod
    def _layers_ok(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (any(i < 0 for i in v) or len(set(v)) != len(v) or v != sorted(v)):
            raise ValueError(f"must be distinct, increasing layer indices >= 0, e.g. [0, 2, 4]; got {shown(v)}")
        return v

    @model_validator(mode="after")
    def _one_student(self) -> DistillConfig:
        if self.keep_layers is not None and self.student_model is not None:
            raise ValueError("set keep_layers (layer-dropped teacher) or student_model (a zoo model), not both")
        if self.student_input_size is not None and self.student_model is None:
            raise ValueError("student_input_size applies to student_model only")
        return self


class DistillStage(Stage):
    type = "distill"
    Config = DistillConfig
    default_name = "distilled"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.distill.kd import kd_problems
        from edgetl.models.zoo import ZOO

        cfg: DistillConfig = self.config  # type: ignore[assignment]
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
        from edgetl.distill.kd import load_teacher, train_with_kd
        from edgetl.models.base import save_model
        from edgetl.models.macs import model_macs
        from edgetl.prune.transformer import layer_summary, sync_hf_config
        from edgetl.train.loop import evaluate, seed_everything

        cfg: DistillConfig = self.config  # type: ignore[assignment]
        seed = ctx.recipe.seed + self.index
        seed_everything(seed)
        data = ctx.data()
        teacher, teacher_name = load_teacher(ctx, cfg.kd.teacher)
        if cfg.keep_layers is not None:
            from edgetl.distill.students import drop_layers

            student = drop_layers(teacher, cfg.keep_layers, self.field("keep_layers"))
            student_kind, parent = "layer_dropped", teacher_name
        elif cfg.student_model is not None:
            from edgetl.models.zoo import load_source
            from edgetl.recipe.schema import ModelConfig

            mc = ModelConfig(source=cfg.student_model, input_size=cfg.student_input_size,
                             max_length=teacher.preprocessing.max_length)
            student = load_source(mc, data.task, data.label_names)
            student_kind, parent = "zoo", None
        else:
            student, parent = ctx.current_model()
            student_kind = "current"
            if parent == teacher_name:
                from edgetl.errors import RecipeError

                raise RecipeError(f"{self.field('kd.teacher')}: the teacher {teacher_name!r} is also the current model, "
                                  "so there is nothing to distil into",
                                  hint="set keep_layers or student_model, or put the stage after prune")
        t_macs, t_params = model_macs(teacher)
        s_macs0, s_params0 = model_macs(student)
        acc_teacher = evaluate(teacher, data.eval)
        acc_student0 = evaluate(student, data.eval)
        cache_path = None
        if cfg.kd.cache:
            ident = ctx.artifacts[teacher_name].sha256 if teacher_name in ctx.artifacts else teacher_name
            key = stable_hash({"teacher": ident, "data": ctx.recipe.data.model_dump(mode="json"),
                               "pre": student.preprocessing.to_dict()})[:16]
            cache_path = ctx.run_dir / "cache" / f"teacher-logits-{key}.npz"
        result, stats = train_with_kd(student, data, cfg.settings(seed), cfg.kd, teacher, progress=ctx.progress,
                                      description=f"distill ({student_kind})", cache_path=cache_path,
                                      field_path=self.field("kd"))
        student.files = sync_hf_config(student.module, student.files)
        student.info.update({"distilled_from": teacher_name, "student": student_kind})
        macs, params = model_macs(student)
        save_model(student, ctx.work_dir / "model")
        ctx.metrics.update({
            "teacher": {"name": teacher_name, "accuracy": acc_teacher, "macs": t_macs, "params": t_params,
                        **({"structure": layer_summary(teacher.module)} if student.task == "text" else {})},
            "student": {"kind": student_kind, "accuracy_before": acc_student0, "accuracy": result.best_accuracy,
                        "macs": macs, "params": params, "macs_before": s_macs0, "params_before": s_params0,
                        **({"structure": layer_summary(student.module)} if student.task == "text" else {})},
            "accuracy_retained": result.best_accuracy / acc_teacher if acc_teacher else None,
            "macs_ratio_vs_teacher": macs / t_macs if t_macs else None,
            "best_epoch": result.best_epoch, "steps": result.steps, "train_seconds": result.seconds,
            "history": result.history, "kd": {"temperature": cfg.kd.temperature, "alpha": cfg.kd.alpha,
                                              "features": len(cfg.kd.features), "attention": cfg.kd.attention is not None,
                                              **stats},
        })
        return [ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent,
            metrics={"accuracy": result.best_accuracy, "accuracy_source": "torch eval during distillation"},
            info={"params": params, "macs": macs, "method": f"distill-{student_kind}", "teacher": teacher_name,
                  "total_params": params},
        )]
