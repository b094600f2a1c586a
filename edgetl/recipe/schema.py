"""The recipe: YAML read into pydantic models. Every field's description is the reference documentation
(`edgetl schema` writes it out as JSON schema). Unknown keys are errors, never warnings."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

MAX_NAME_BYTES = 100  # a run or stage name is a folder or file name: far below the usual 255-byte limit
MAX_STAGES = 100  # each stage is a folder of the run; more is a generated or broken recipe, slow to check


class StrictModel(BaseModel):
    # allow_inf_nan=False: every float field of every recipe block refuses .nan / .inf / -.inf, which pass
    # `gt`/`le` checks (`.inf` for parity_atol switched parity off) and poison training or report maths
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


def _safe_name(value: str) -> str:
    if value in (".", ".."):
        raise ValueError(f"{value!r} names a folder (the current or the parent one); use a plain name such as `run-1`")
    if "/" in value or "\\" in value:
        raise ValueError("must not contain path separators (/ or \\): it becomes one folder or file name")
    if not value.isprintable():
        raise ValueError("must not contain control characters (NUL, tab, newline, escape, ...)")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(f"must be at most {MAX_NAME_BYTES} bytes in UTF-8")
    return value


# A run or artifact name: it becomes a folder or file name (runs/<name>, models/<name> in a bundle)
SafeName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_BYTES), AfterValidator(_safe_name)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what numpy's legacy seeding accepts


SELECTION_FIELDS = ("candidates", "rank_by", "max_latency_ms", "rank_samples")  # used by source: auto only


class ModelConfig(StrictModel):
    source: str = Field(
        description=(
            "The source model: a zoo name (`edgetl zoo` lists them: mobilenet_v2, efficientnet_lite0/1/2, minilm_l6), "
            "`hf:<hub id or local folder>` for a Hugging Face image or sequence classification model, the path "
            "of a saved edgetl model folder (a `model` artifact of an earlier run), "
            "`python:package.module:function` for your own model (a factory called with num_labels that returns "
            "an nn.Module, (nn.Module, preprocessing dict) or an EdgeModel; docs/api.md), or `auto`: score "
            "`candidates` on the training data from frozen features and continue with the best one."
        )
    )
    candidates: list[str] | None = Field(
        None, min_length=1, max_length=50,
        description="source: auto: the models to choose from (any `source` value but auto), e.g. "
                    "[mobilenet_v2, efficientnet_lite0, efficientnet_lite1].",
    )
    rank_by: Literal["logme", "leep", "nce", "hscore", "hscore_reg"] = Field(
        "logme",
        description="source: auto: the transferability score that picks the candidate. `logme` (evidence of a "
                    "linear model on the features; every model has it), `leep` / `nce` (need the model's own "
                    "source classifier, e.g. its ImageNet head), `hscore` (Bao et al.), `hscore_reg` (H-score "
                    "with Ledoit-Wolf shrinkage, for fewer examples than feature dimensions).",
    )
    max_latency_ms: float | None = Field(
        None, gt=0, description="source: auto: only candidates whose eager FP32 batch-1 p50 latency, measured on "
                                "this machine, is at most this many ms.")
    rank_samples: int = Field(
        1000, ge=10, le=100_000,
        description="source: auto: training examples (stratified, fixed seed) the candidates are scored on.",
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

    @model_validator(mode="after")
    def _selection_only_with_auto(self) -> ModelConfig:
        if self.source == "auto":
            if not self.candidates:
                raise ValueError("source: auto needs `candidates`, the models to choose from, e.g. "
                                 "[mobilenet_v2, efficientnet_lite0]")
            if "auto" in self.candidates:
                raise ValueError("candidates cannot hold `auto`; list zoo names, hf:<id> or model folders")
            twice = sorted({c for c in self.candidates if self.candidates.count(c) > 1})
            if twice:
                raise ValueError(f"candidates lists {', '.join(twice)} more than once")
        else:
            given = [f for f in SELECTION_FIELDS if f in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to source: auto (source is {self.source!r}); "
                                 "remove them or set source: auto")
        return self


DATA_READING_FIELDS = {"stream_above_mb", "workers"}  # how data is read, not which: left out of run keys


class DataConfig(StrictModel):
    name: Literal["fashion_mnist", "mnist_5k", "digits", "rotten_tomatoes", "imagefolder", "csv"] = Field(
        description=(
            "Dataset: a named offline set (fashion_mnist, mnist_5k, digits, rotten_tomatoes) or your own data "
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
    split_seed: Seed = Field(
        0, description="Seed of the stratified split and subsets, 0 to 2**32 - 1 (keep fixed to compare runs)."
    )
    skip_corrupt: bool = Field(
        False,
        description=(
            "imagefolder: skip images that cannot be decoded (truncated or not an image), logging and counting "
            "them, instead of stopping with an error that names the first one."
        ),
    )
    stream_above_mb: int = Field(
        1024, ge=0,
        description=(
            "imagefolder / csv: data bigger than this many MB (decoded images, or the CSV file) stays on disk and "
            "is read batch by batch (images decoded in `workers` processes) instead of held in memory; the "
            "examples and results are the same either way. 0: always read from disk."
        ),
    )
    workers: int = Field(
        2, ge=0, le=64,
        description=(
            "imagefolder: processes that decode images while loading and, for data read from disk, ahead of each "
            "training batch; 0 decodes in the main process."
        ),
    )

    @field_validator("path", "eval_path")
    @classmethod
    def _path_only_for_own_data(cls, v: str | None, info: ValidationInfo) -> str | None:
        # a named set reads no files: a path beside it would be ignored while the user thinks it is used
        name = info.data.get("name")
        if v is not None and name is not None and name not in ("imagefolder", "csv"):
            raise ValueError(f"{name} is a named dataset and reads no files; remove data.{info.field_name}, or "
                             "use name: imagefolder or csv for your own data")
        return v


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
    name: SafeName | None = Field(
        None,
        description="Name of the artifact this stage produces (default: derived from the stage type); letters, "
        "digits, `_`, `.` and `-`, at most 100 characters, not `.` or `..`.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )


# ---- the `search:` block, read by `edgetl search` (edgetl/pipeline/search.py); `edgetl compress` ignores it


class SearchParam(StrictModel):
    """One knob: a range (`low`..`high`, optionally `log` or `step`; integers when both ends are) or `choices`."""

    low: float | None = Field(None, description="Smallest value of a range.")
    high: float | None = Field(None, description="Largest value of a range.")
    log: bool = Field(False, description="Sample the range on a log scale (both ends > 0).")
    step: float | None = Field(None, gt=0, description="Sample the range on this grid.")
    integer: bool = Field(False, description="Sample integers (set when both ends are written as integers).")
    choices: list[str | int | float | bool | list[int]] | None = Field(
        None, min_length=2, max_length=100,
        description="Pick one of these values (a value may be a list of integers, e.g. a student's `keep_layers`).")

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        ranged = self.low is not None or self.high is not None
        if ranged == (self.choices is not None):
            raise ValueError("give either low and high (a range) or choices, not both, not neither")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"a range needs low < high, got low={self.low}, high={self.high}")
            if self.log and self.low <= 0:
                raise ValueError("log: true needs low > 0")
        return self


class SearchConfig(StrictModel):
    params: dict[str, SearchParam] = Field(
        min_length=1, max_length=50,
        description="The knobs, by `--set` path (e.g. `stages.2.target.macs_ratio`): `[low, high]`, `{low, high, "
        "log, step}`, or `{choices: [...]}`.")
    objective: Literal["latency", "pareto"] = Field(
        "latency", description="`latency`: the lowest p50 of the final artifact (the recipe's benchmark stage) among "
        "trials that meet the recipe's `targets`. `pareto`: the accuracy / p50 front; the chosen trial is the "
        "fastest on the front that meets the targets.")
    trials: int = Field(12, ge=1, le=10000, description="Trials in the study (all workers together).")
    trial_set: list[str] = Field(
        default_factory=list, max_length=50,
        description="`--set` overrides for the trials only, e.g. `data.train_limit=500` to search on fewer examples; "
        "the chosen trial is re-run without them for the reported numbers.")
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's sampler (seeded by the recipe's seed).")
    peers: bool = Field(
        True, description="After the chosen trial's re-run, time it side by side with its FP32 baseline and a careful "
        "ONNX Runtime PTQ of that baseline (per-channel, QUInt8, the best calibration on held-out training examples), "
        "each with its accuracy on the eval split: the search's headline ratios, and the peer on the plot.")
    prune_slack: float | None = Field(
        0.01, ge=0, le=1, description="Stop a trial as soon as a stage leaves its model more than this below the "
        "accuracy the targets allow (`max_accuracy_drop` from the first accuracy of the run, `min_accuracy`): later "
        "stages rarely win it back (Optuna's ThresholdPruner; the stages it finished stay reusable). `null`: run "
        "every trial to the end.")

    @field_validator("params", mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        """`[low, high]` is a range (integers when both are); a longer list is the choices."""
        if not isinstance(value, dict):
            return value
        out = {}
        for path, spec in value.items():
            if isinstance(spec, list) and len(spec) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
                spec = {"low": spec[0], "high": spec[1], "integer": all(isinstance(v, int) for v in spec)}
            elif isinstance(spec, list):
                spec = {"choices": spec}
            out[path] = spec
        return out

    @field_validator("params")
    @classmethod
    def _paths(cls, value: dict[str, SearchParam]) -> dict[str, SearchParam]:
        for path in value:
            if not path or "=" in path or path.startswith("search") or path.split(".")[0] not in (
                    "model", "data", "stages", "targets", "seed"):
                raise ValueError(f"{path!r}: a knob is a recipe field path such as stages.2.target.macs_ratio "
                                 "(under model, data, stages, targets or seed)")
        return value


class RecipeBase(StrictModel):
    name: SafeName = Field(
        description="Name of the run, used in reports and as the run folder (runs/<name>): no `/` or `\\`, no "
        "control characters, not `.` or `..`, at most 100 bytes."
    )
    seed: Seed = Field(0, description="Seed for everything random (data order, init, dropout), 0 to 2**32 - 1.")
    model: ModelConfig = Field(description="The source model.")
    data: DataConfig = Field(description="The labelled target data.")
    targets: Targets = Field(default_factory=Targets, description="Budgets checked in the report.")
    search: SearchConfig | None = Field(
        None, description="What `edgetl search` varies and optimizes (ignored by `edgetl compress`).")
    _overrides: list[str] = PrivateAttr(default_factory=list)

    @property
    def overrides(self) -> list[str]:
        """The `--set` assignments applied to the file, so a later check can name the one behind a problem."""
        return self._overrides


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
            Field(min_length=1, max_length=MAX_STAGES,
                  description="The pipeline: stages run in order, each discriminated by `type:`."),
        ),
    )
