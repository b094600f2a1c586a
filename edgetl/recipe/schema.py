"""The recipe: YAML read into pydantic models. Every field's description is the reference documentation
(`edgetl schema` writes it out as JSON schema). Unknown keys are errors, never warnings."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ModelConfig(StrictModel):
    source: str = Field(
        description=(
            "The source model: a zoo name (`edgetl zoo` lists them: mobilenet_v2, efficientnet_lite0/1/2, minilm_l6), "
            "`hf:<hub id or local folder>` for a Hugging Face image or sequence classification model, or the path "
            "of a saved edgetl model folder (a `model` artifact of an earlier run)."
        )
    )
    pretrained: bool = Field(True, description="Load the pretrained weights (false: random init, for tests only).")
    input_size: int | None = Field(
        None, ge=16, le=1024, description="Image models: square input size in pixels (default: the model's own)."
    )
    max_length: int | None = Field(
        None, ge=8, le=4096, description="Text models: tokens per example after truncation (default 128)."
    )
    pooling: Literal["auto", "cls", "mean"] = Field(
        "auto",
        description=(
            "Text models: how a sentence becomes one vector for the classifier. `cls`: the model's own transformers "
            "head ([CLS] token, BERT's pooler); `mean`: the mean of the token states under the attention mask "
            "(how sentence-transformers models such as minilm_l6 were trained); `auto`: what the model's "
            "sentence-transformers config declares (modules.json), else `cls`."
        ),
    )
    revision: str | None = Field(None, description="`hf:` hub models: a branch, tag or commit to pin.")
    trust_remote_code: bool = Field(
        False, description="`hf:` models: allow the model repository's own Python code to run (opt-in)."
    )


class DataConfig(StrictModel):
    name: Literal["fashion_mnist", "mnist_5k", "rotten_tomatoes", "imagefolder", "csv"] = Field(
        description=(
            "Dataset: a named offline set (fashion_mnist, mnist_5k, rotten_tomatoes) or your own data "
            "(`imagefolder`: one sub-folder per class; `csv`: a text column and a label column)."
        )
    )
    path: str | None = Field(
        None,
        description=(
            "imagefolder: root folder, either with `train/` and `val/` inside or with class folders directly "
            "(then split by `eval_fraction`); csv: the CSV file. Relative paths are relative to the recipe file."
        ),
    )
    eval_path: str | None = Field(None, description="Optional separate evaluation folder or CSV file.")
    text_column: str = Field("text", description="csv: name of the column holding the text.")
    label_column: str = Field("label", description="csv: name of the column holding the label.")
    train_limit: int | None = Field(
        None, gt=0, description="Use at most this many training examples (stratified subset, fixed seed)."
    )
    eval_limit: int | None = Field(
        None, gt=0, description="Use at most this many evaluation examples (stratified subset, fixed seed)."
    )
    eval_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share held out for evaluation when the data has no split of its own."
    )
    split_seed: int = Field(0, description="Seed of the stratified split and subsets (keep fixed to compare runs).")
    skip_corrupt: bool = Field(
        False,
        description=(
            "imagefolder: skip images that cannot be decoded (truncated or not an image), logging and counting "
            "them, instead of stopping with an error that names the first one."
        ),
    )


class Targets(StrictModel):
    """Budgets the report checks against the final artifact, stated as pass/fail."""

    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="Largest allowed accuracy drop of `final` vs `baseline` (0.01 = 1 point)."
    )
    min_accuracy: float | None = Field(None, ge=0, le=1, description="Smallest allowed accuracy of `final`.")
    max_latency_ms: float | None = Field(None, gt=0, description="Largest allowed p50 latency of `final` (ms).")
    min_speedup: float | None = Field(None, gt=0, description="Smallest allowed p50 speed-up of `final` vs `baseline`.")
    max_size_mb: float | None = Field(None, gt=0, description="Largest allowed file size of `final` (MB, 1e6 bytes).")


class StageConfig(StrictModel):
    """Fields every stage has. Each stage module subclasses this with `type: Literal[...]`."""

    type: str
    name: str | None = Field(
        None,
        description="Name of the artifact this stage produces (default: derived from the stage type).",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )


class RecipeBase(StrictModel):
    name: str = Field(description="Name of the run, used in reports.", min_length=1)
    seed: int = Field(0, description="Seed for everything random (data order, init, dropout).")
    model: ModelConfig = Field(description="The source model.")
    data: DataConfig = Field(description="The labelled target data.")
    targets: Targets = Field(default_factory=Targets, description="Budgets checked in the report.")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, v: str) -> str:
        if any(c in v for c in "/\\"):
            raise ValueError("must not contain path separators")
        return v


@functools.cache
def recipe_model() -> type[RecipeBase]:
    """The Recipe class, with `stages` a list discriminated by `type:` over every registered stage."""
    from edgetl.registry import STAGES

    configs = tuple(entry.load().Config for entry in STAGES)
    stage_union: Any = Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007
    return create_model(
        "Recipe",
        __base__=RecipeBase,
        stages=(
            list[stage_union],
            Field(min_length=1, description="The pipeline: stages run in order, each discriminated by `type:`."),
        ),
    )
