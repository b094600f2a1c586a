"""Configuration of fine-tuning (`edgetl.finetune`, the `finetune` recipe stage): the method and its options.
Light: pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edgetl.distill.config import KDConfig
from edgetl.errors import shown
from edgetl.recipe.schema import DataConfig, StrictModel
from edgetl.train.config import TrainingFields


class LinearProbeOptions(StrictModel):
    cache_features: bool = Field(
        True, description="Run the frozen backbone once and train the head on the cached features (epochs become "
                          "cheap). Turned off automatically when `forgetting` is set.")
    lr_multiplier: float = Field(20.0, gt=0, le=10000, description="The head trains at `lr` x this (a lone linear "
                                 "head needs a higher rate than a full network).")


class LoraOptions(StrictModel):
    rank: int = Field(8, ge=1, le=4096, description="Rank r of the low-rank update B·A.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator: the update is scaled by alpha / rank.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch input.")
    targets: list[str] | None = Field(
        None, description="Layers that get LoRA: module names or dotted suffixes (peft `target_modules`). Default: "
                          "query/key/value/dense for transformers, every Conv2d with groups=1 for CNNs.")
    lr_multiplier: float | None = Field(None, gt=0, le=10000, description="LoRA matrices and the head train at `lr` x "
                                        "this. Default: 10x (LoRA needs a higher rate than full fine-tuning), capped "
                                        "so the rate stays at most max(lr, 1e-3): 5e-5 -> 5e-4 for BERT, 1e-3 stays 1e-3.")
    merge_atol: float = Field(1e-4, gt=0, description="Largest allowed max-abs logit difference before vs after "
                              "merging LoRA into the base weights.")


class AdapterOptions(StrictModel):
    style: Literal["houlsby", "pfeiffer"] = Field(
        "houlsby", description="Transformers: `houlsby` = adapters after attention and feed-forward outputs, "
                               "`pfeiffer` = after the feed-forward output only. CNNs always get one residual 1x1 "
                               "adapter per block.")
    reduction: int = Field(16, ge=1, le=4096, description="Bottleneck size = layer width // reduction.")
    activation: Literal["relu", "gelu"] = Field("relu", description="Non-linearity inside the bottleneck.")
    targets: list[str] | None = Field(None, description="Layers (Linear/Conv2d names or dotted suffixes) after "
                                      "which adapters go; default: the placement of `style`.")
    train_norms: bool = Field(True, description="Also train LayerNorm/BatchNorm affine weights (as Houlsby does).")
    lr_multiplier: float | None = Field(None, gt=0, le=10000, description="Adapters, norms and head train at `lr` x "
                                        "this. Default: 10x, capped so the rate stays at most max(lr, 1e-3).")


class ForgettingOptions(StrictModel):
    method: Literal["ewc", "lwf"] = Field(description="`ewc`: Fisher-weighted L2 to the source weights; `lwf`: "
                                          "distill the frozen source model on the target inputs.")
    weight: float | None = Field(None, ge=0, description="Weight of the term (default: 100 for ewc, 1 for lwf).")
    fisher_samples: int = Field(128, ge=1, le=100000, description="ewc: examples used to estimate the Fisher.")
    fisher_data: DataConfig | None = Field(
        None, description="ewc: a sample of the source task (same labels as the model) for the Fisher; null: target "
                          "inputs labelled by the model's own predictions.")
    on: Literal["features", "logits"] = Field(
        "features", description="lwf: match the head's input features (MSE; right for a new head) or the "
                                "temperature-softened logits (KL; for a source model that already has these labels).")
    temperature: float = Field(2.0, gt=0, description="lwf on logits: softmax temperature.")

    @property
    def effective_weight(self) -> float:
        return self.weight if self.weight is not None else (100.0 if self.method == "ewc" else 1.0)


class AdaptOptions(StrictModel):
    method: Literal["coral", "mmd", "dann", "adabn"] = Field(
        description="`coral`: Deep CORAL, align feature covariances; `mmd`: multi-kernel MMD (DAN); `dann`: a domain "
                    "classifier behind a gradient reversal (weight schedule 2/(1+exp(-10p))-1); `adabn`: after "
                    "training, re-estimate BatchNorm statistics on the target data (no training on it).")
    target: DataConfig = Field(
        description="The deployment site's data. Its inputs are used without labels: a named set or an imagefolder "
                    "with class folders (labels then serve only evaluation, on its eval split), or an imagefolder "
                    "whose images lie directly in `path` (unlabelled; `eval_path` may name a labelled folder).")
    weight: float | None = Field(
        None, gt=0, le=1e6, description="coral/mmd/dann: weight of the alignment term added to cross-entropy "
                                        "(default: coral 100, mmd 1, dann 1).")
    layer: str | None = Field(
        None, description="coral/mmd/dann: module whose output is aligned (a name or dotted suffix; spatial maps and "
                          "token sequences are averaged). Default: the head's input, the penultimate features.")
    source_only: bool = Field(
        True, description="coral/mmd/dann: also fine-tune a copy without adaptation (same seed and settings) so the "
                          "report shows source-only next to adapted accuracy, on the target and on the source; "
                          "costs about a third more training time. adabn gets both for free.")

    @property
    def effective_weight(self) -> float:
        return self.weight if self.weight is not None else {"coral": 100.0, "mmd": 1.0, "dann": 1.0}.get(self.method, 0.0)


class FinetuneConfig(TrainingFields):
    """Which parameters train and how (`method` and its options), forgetting control, KD, domain adaptation."""

    method: Literal["full", "linear_probe", "lora", "adapter"] = Field(
        "full", description="`full`: every weight trains; `linear_probe`: only the new head; `lora`: low-rank "
                            "updates via peft, merged afterwards; `adapter`: bottleneck adapters that stay in the model.")
    lr_decay: float | None = Field(
        None, gt=0, le=1, description="full: layer-wise learning rates, depth group d below the top gets lr x "
                                      "lr_decay**d (e.g. 0.8).")
    lr_groups: dict[str, float] | None = Field(
        None, description="full: explicit learning rates by module name or dotted suffix, e.g. "
                          "{features.0: 1e-5}; wins over lr_decay.")
    unfreeze: list[int] | None = Field(
        None, min_length=1, description="full: gradual unfreezing. Entry k is the epoch (0-based) from which the k-th "
                                        "depth group from the top trains (k=0: head); groups below the last entry "
                                        "follow it. [0, 1, 2] = head first, top block after 1 epoch, the rest after 2.")
    batchnorm: Literal["auto", "update", "freeze"] = Field(
        "auto", description="`freeze`: BatchNorm in eval mode (source statistics kept); `update`: batch statistics "
                            "while training. auto: update for full, freeze for the other methods.")
    augment: list[Literal["flip", "crop", "color_jitter"]] = Field(
        default_factory=list, description="Image augmentation of training batches (none for text).")
    linear_probe: LinearProbeOptions = Field(default_factory=LinearProbeOptions, description="method: linear_probe options.")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="method: lora options.")
    adapter: AdapterOptions = Field(default_factory=AdapterOptions, description="method: adapter options.")
    forgetting: ForgettingOptions | None = Field(None, description="Forgetting control (ewc or lwf), any method.")
    kd: KDConfig | None = Field(
        None, description="Distil from a teacher while fine-tuning, any method (logit, feature, attention KD). The "
                          "teacher predicts the same labels: an earlier artifact (default: the newest fine-tuned one) "
                          "or a saved edgetl model folder, e.g. a bigger model fine-tuned by another recipe.")
    adapt: AdaptOptions | None = Field(
        None, description="Unsupervised domain adaptation to unlabelled data of the deployment site, any method but "
                          "linear_probe (adabn works with every method). Later stages can use the target data: "
                          "`calibration_data: target` (quantize), `eval_data: target` (benchmark).")

    @field_validator("unfreeze")
    @classmethod
    def _non_decreasing(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if any(e < 0 for e in v):
                raise ValueError("epochs are 0-based and cannot be negative")
            if any(b < a for a, b in zip(v, v[1:], strict=False)):
                raise ValueError(f"{shown(v)} must not decrease: a deeper group cannot unfreeze before the one above it")
        return v

    @property
    def bn_policy(self) -> str:
        if self.batchnorm != "auto":
            return self.batchnorm
        return "update" if self.method == "full" else "freeze"
