"""The `kd:` recipe block, light (pydantic only) so any training technique can take it as an option, and
the configuration of distillation into a student (`edgetl.distill`, the `distill` recipe stage)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from edgetl.errors import shown
from edgetl.recipe.schema import StrictModel
from edgetl.train.config import TrainingFields


class LayerPair(StrictModel):
    student: str = Field(description="Module name in the student (e.g. `features.13`, `hf.bert.encoder.layer.1`).")
    teacher: str = Field(description="Module name in the teacher whose output the student's should match.")
    weight: float = Field(1.0, gt=0, description="Weight of this pair's loss.")


class AttentionKD(StrictModel):
    weight: float = Field(1.0, gt=0, description="Weight of the attention-transfer loss.")
    layers: list[LayerPair] | None = Field(
        None,
        description=(
            "Pairs of layers to match. Transformers: encoder layers (`hf.bert.encoder.layer.N`) whose attention "
            "probabilities (averaged over heads) are matched by KL; default: every student layer with the teacher "
            "layer it was copied from (or an evenly spaced one). CNNs: modules whose spatial attention maps "
            "(channel-mean of squared activations) are matched; required for image models."
        ),
    )


class KDConfig(StrictModel):
    teacher: str | None = Field(
        None,
        description=(
            "The teacher: the name of an earlier PyTorch artifact (e.g. `finetuned`) or a saved edgetl model "
            "folder. Default: in `prune`, the model as it was before pruning; in `distill`, the newest "
            "artifact of a `finetune` stage (else the newest PyTorch artifact)."
        ),
    )
    temperature: float = Field(4.0, gt=0, le=100, description="Softmax temperature T of logit KD (loss scaled by T^2).")
    alpha: float = Field(
        0.5, ge=0, le=1,
        description="Weight of the hard-label cross-entropy; logit KD gets 1 - alpha (alpha=1: no logit KD).",
    )
    features: list[LayerPair] = Field(
        default_factory=list,
        description=(
            "Feature/hint KD: MSE between the output of each student module and its teacher module, through a "
            "learned projector (1x1 conv for feature maps, linear for token features)."
        ),
    )
    attention: AttentionKD | None = Field(None, description="Attention transfer (off unless set).")
    cache: bool = Field(
        False,
        description=(
            "Cache the teacher's logits per training example (in memory and under RUN/cache/), so later epochs "
            "and reruns skip the teacher's forward pass. Logit KD only."
        ),
    )

    @model_validator(mode="after")
    def _cache_only_logits(self) -> KDConfig:
        if self.cache and (self.features or self.attention):
            raise ValueError("cache: true caches logits only; it cannot be combined with `features` or `attention` "
                             "(those need the teacher's live activations): drop `cache` or those losses")
        return self


class DistillConfig(TrainingFields):
    """Who the student is (default: the model handed over) and the distillation losses (`kd`)."""

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
