"""`finetune`: transfer learning of the source model onto the target data.

`method` picks which parameters train: `full` (all, with optional layer-wise learning rates, gradual
unfreezing, BatchNorm policy and image augmentation), `linear_probe` (only the new head, on cached
backbone features by default), `lora` (peft LoRA, merged before the model is handed on) or `adapter`
(bottleneck adapters that stay in the model). `forgetting` adds EWC or LwF to any of them. The code of
each method lives in `edgetl/finetune/`.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from pydantic import Field, field_validator

from edgetl.distill.config import KDConfig
from edgetl.errors import shown
from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import DataConfig, StageConfig, StrictModel
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class TrainingFields(StageConfig):
    """Optimisation settings shared by every stage that trains."""

    epochs: float = Field(1.0, gt=0, le=1000, description="Passes over the training data (fractions allowed).")
    batch_size: int = Field(32, ge=1, le=4096, description="Examples per optimizer step (before accumulation).")
    lr: float = Field(1e-3, gt=0, le=1, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW decoupled weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear learning-rate warm-up.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate decay after warm-up.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this value (null: no clipping).")
    grad_accum: int = Field(1, ge=1, le=1024, description="Accumulate gradients over this many batches per step.")
    early_stopping: int | None = Field(None, ge=1, description="Stop after this many epochs without eval improvement.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (for quick runs).")

    def settings(self, seed: int):
        from edgetl.train.loop import TrainSettings

        return TrainSettings(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            warmup_ratio=self.warmup_ratio, schedule=self.schedule, label_smoothing=self.label_smoothing,
            grad_clip=self.grad_clip, grad_accum=self.grad_accum, early_stopping=self.early_stopping,
            max_steps=self.max_steps, seed=seed,
        )


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


def adapt_target(recipe, before: int) -> DataConfig | None:
    """The target data of the newest `finetune` stage with `adapt:` among the stages before index `before`."""
    for stage in reversed(recipe.stages[:before]):
        if getattr(stage, "type", None) == "finetune" and stage.adapt is not None:
            return stage.adapt.target
    return None


class FinetuneConfig(TrainingFields):
    type: Literal["finetune"] = Field(description="Fine-tune the current model on the target data.")
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


class FinetuneStage(Stage):
    type = "finetune"
    Config = FinetuneConfig
    default_name = "finetuned"
    distributed = True  # runs on every rank under torchrun (DDP); rank 0 alone writes the artifacts

    def problems(self, plan: PlanState, recipe) -> list[str]:
        plan.available.append(("pytorch", "fp32"))
        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        out: list[str] = []
        for opt in ("linear_probe", "lora", "adapter"):
            if opt in cfg.model_fields_set and cfg.method != opt:
                out.append(f"{self.field(opt)}: only used with method: {opt}, but method is {cfg.method}; "
                           f"remove `{opt}:` or set method: {opt}")
        for opt in ("lr_decay", "lr_groups", "unfreeze"):
            if getattr(cfg, opt) is not None and cfg.method != "full":
                out.append(f"{self.field(opt)}: only used with method: full (method is {cfg.method}); remove it")
        if cfg.augment and plan.task == "text":
            out.append(f"{self.field('augment')}: {cfg.augment} are image augmentations but the data is text; "
                       "remove `augment:`")
        if cfg.unfreeze and max(cfg.unfreeze) >= math.ceil(cfg.epochs):
            out.append(f"{self.field('unfreeze')}: epoch {max(cfg.unfreeze)} never comes, training has "
                       f"{math.ceil(cfg.epochs)} epoch(s) (0-based: 0..{math.ceil(cfg.epochs) - 1}); shorten the "
                       "schedule or raise epochs")
        f = cfg.forgetting
        if f is not None and f.fisher_data is not None:
            from edgetl.data.datasets import TASKS, data_problems

            if f.method != "ewc":
                out.append(f"{self.field('forgetting.fisher_data')}: only used with forgetting.method: ewc")
            if TASKS[f.fisher_data.name] != plan.task:
                out.append(f"{self.field('forgetting.fisher_data.name')}: {f.fisher_data.name} is "
                           f"{TASKS[f.fisher_data.name]} data but the recipe's data is {plan.task}")
            out += [f"{self.field('forgetting.fisher_data')}.{p}" for p in data_problems(f.fisher_data)]
        if cfg.kd is not None:
            from edgetl.distill.kd import kd_problems

            out += kd_problems(cfg.kd, recipe, self.index, self.field("kd"), plan.task, default_from_earlier=True)
        if cfg.adapt is not None:
            out += self._adapt_problems(cfg.adapt, cfg, recipe, plan.task)
        needs_arch = (cfg.unfreeze or cfg.lr_groups or (cfg.method == "lora" and cfg.lora.targets)
                      or (cfg.method == "adapter" and cfg.adapter.targets))
        if needs_arch:
            out += self._arch_problems(cfg, recipe, plan.task)
        return out

    def _adapt_problems(self, a: AdaptOptions, cfg: FinetuneConfig, recipe, task: str) -> list[str]:
        from edgetl.data.datasets import TASKS, target_problems

        out = []
        if a.method != "adabn" and cfg.method == "linear_probe":
            out.append(f"{self.field('adapt.method')}: {a.method} aligns features the backbone computes, but "
                       "linear_probe freezes the backbone; use method: full, lora or adapter, or adapt.method: adabn")
        if a.method == "adabn":
            for key in ("weight", "layer"):
                if getattr(a, key) is not None:
                    out.append(f"{self.field('adapt.' + key)}: only used by coral, mmd and dann (adabn trains "
                               "nothing); remove it")
        if TASKS[a.target.name] != task:
            out.append(f"{self.field('adapt.target.name')}: {a.target.name} is {TASKS[a.target.name]} data but the "
                       f"recipe's data is {task}; the target must be the same kind of input from another place")
        elif a.target == recipe.data:
            out.append(f"{self.field('adapt.target')}: the target is the training data itself; give the "
                       "deployment site's data")
        out += [f"{self.field('adapt.target')}.{p.removeprefix('data.')}" for p in target_problems(a.target)]
        if a.layer is not None or a.method == "adabn":
            out += self._adapt_arch_problems(a, recipe, task)
        return out

    def _adapt_arch_problems(self, a: AdaptOptions, recipe, task: str) -> list[str]:
        from torch import nn

        from edgetl.finetune.arch import skeleton

        module = skeleton(recipe.model, task)
        if module is None:
            return []  # not buildable offline: checked again when the stage runs
        names = [n for n, _ in module.named_modules() if n]
        if a.layer is not None and not any(n == a.layer or n.endswith("." + a.layer) for n in names):
            out = [f"{self.field('adapt.layer')}: {a.layer!r} is not a module of {recipe.model.source} (top-level "
                   f"modules: {', '.join(n for n, _ in module.named_children())})"]
            return out
        if a.method == "adabn" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
            return [f"{self.field('adapt.method')}: adabn re-estimates BatchNorm statistics, but "
                    f"{recipe.model.source} has no BatchNorm layer; use coral, mmd or dann"]
        return []

    def _arch_problems(self, cfg: FinetuneConfig, recipe, task: str) -> list[str]:
        from edgetl.finetune import adapters, lora
        from edgetl.finetune.arch import depth_groups, skeleton
        from edgetl.finetune.layerwise import unknown_module_targets

        module = skeleton(recipe.model, task)
        if module is None:
            return []  # not buildable offline: checked again when the stage runs
        out = []
        if cfg.unfreeze:
            groups = depth_groups(module)
            if len(cfg.unfreeze) > len(groups):
                out.append(f"{self.field('unfreeze')}: the schedule has {len(cfg.unfreeze)} entries but "
                           f"{recipe.model.source} has only {len(groups)} depth groups ({groups.names[0]} .. "
                           f"{groups.names[-1]}); give at most {len(groups)} epochs")
        if cfg.lr_groups:
            for t in unknown_module_targets(module, list(cfg.lr_groups)):
                out.append(f"{self.field('lr_groups')}: {t!r} is not a module of {recipe.model.source} "
                           f"(top-level modules: {', '.join(n for n, _ in module.named_children())})")
        if cfg.method == "lora":
            out += [f"{self.field('lora.targets')}: {p} of {recipe.model.source}" for p in lora.target_problems(module, cfg.lora.targets)]
        if cfg.method == "adapter":
            out += [f"{self.field('adapter.targets')}: {p} of {recipe.model.source}"
                    for p in adapters.target_problems(module, cfg.adapter.targets)]
        return out

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.distill.kd import load_teacher, logit_cache_path
        from edgetl.finetune.methods import run_method
        from edgetl.models.base import save_model
        from edgetl.train.loop import evaluate, seed_everything

        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        seed = ctx.recipe.seed + self.index
        seed_everything(seed)
        model, parent = ctx.current_model()
        data = ctx.data()
        before = evaluate(model, data.eval)
        teacher = teacher_name = None
        if cfg.kd is not None:
            teacher, teacher_name = load_teacher(ctx, cfg.kd.teacher)
        kd_cache = logit_cache_path(ctx, cfg.kd, teacher_name or "")
        adapt_facts = None
        if cfg.adapt is None:
            outcome = run_method(cfg, model, data, seed, progress=ctx.progress, teacher=teacher, kd_cache=kd_cache)
        else:
            from edgetl.data.datasets import load_target
            from edgetl.finetune.domain import run_adapted

            target = load_target(cfg.adapt.target)
            outcome, adapt_facts = run_adapted(
                cfg, model, data, target, seed,
                train=lambda c, m: run_method(c, m, data, seed, progress=ctx.progress, teacher=teacher,
                                              kd_cache=kd_cache, target_inputs=target.inputs))
            outcome.facts["adapt"] = adapt_facts
        if teacher_name is not None:
            outcome.facts.setdefault("kd", {})["teacher"] = teacher_name
        result = outcome.result
        total = model.parameter_count()
        trainable = outcome.trainable
        pct = round(100.0 * trainable / max(total, 1), 4)
        model.info.update({"finetune_method": cfg.method})
        save_model(model, ctx.work_dir / "model")
        ctx.metrics.update({
            "method": cfg.method, "eval_accuracy_before": before, "best_eval_accuracy": result.best_accuracy,
            "best_epoch": result.best_epoch, "train_seconds": result.seconds, "steps": result.steps,
            "history": result.history, "trainable_params": trainable, "total_params": total,
            "trainable_percent": pct, **outcome.facts,
        })
        metrics = {"accuracy": result.best_accuracy, "accuracy_source": "torch eval during training"}
        if adapt_facts is not None:  # adabn changes the model after training: its source accuracy is the one kept
            metrics = {"accuracy": adapt_facts["source_accuracy"], "accuracy_source": "torch eval after adaptation",
                       "target_accuracy": adapt_facts["target_accuracy"]}
        return [ctx.artifact(
            self.artifact_name, "pytorch", "fp32", "model", parent=parent, metrics=metrics,
            info={"params": total, "trainable_params": trainable, "total_params": total, "method": cfg.method,
                  "trainable_percent": pct, "best_epoch": result.best_epoch, "train_seconds": result.seconds,
                  **({"kd_teacher": teacher_name} if teacher_name else {}),
                  **({"adapt": cfg.adapt.method} if cfg.adapt else {})},
        )]
