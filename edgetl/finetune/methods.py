"""One function per fine-tuning method; `run_method` dispatches on the recipe's `method`. Each sets which
parameters train, builds the optimizer's parameter groups, runs the shared Trainer (or the cached linear
probe) and hands back a plain model: LoRA merged, every parameter requiring grad again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from edgetl.data.datasets import DataBundle
from edgetl.finetune import adapters, lora
from edgetl.finetune.augment import make_augment
from edgetl.finetune.layerwise import GradualUnfreezer, freeze_except, param_groups, train_mode
from edgetl.finetune.regularizers import build_terms
from edgetl.models.adapters import inject
from edgetl.models.arch import depth_groups, head_name
from edgetl.models.base import EdgeModel, to_torch
from edgetl.train.loop import Trainer, TrainResult

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    result: TrainResult
    trainable: int  # parameters that trained (for gradual unfreezing: by the end)
    facts: dict[str, Any] = field(default_factory=dict)  # method-specific numbers for the report


def _count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def run_method(cfg: Any, model: EdgeModel, data: DataBundle, seed: int, progress=None,
               teacher: EdgeModel | None = None, kd_cache: Any = None, target_inputs: Any = None,
               loss: Callable | None = None, metric: Callable | None = None) -> Outcome:
    """Train `model` in place by `cfg.method`; with `cfg.kd` and a `teacher`, KD terms join the loss; with a
    coral/mmd/dann `cfg.adapt`, a domain alignment term on `target_inputs` (unlabelled) does. `loss` and
    `metric` replace cross-entropy and top-1 accuracy (TrainSettings)."""
    head = head_name(model.module)
    fisher_loader = None
    if cfg.forgetting is not None and cfg.forgetting.fisher_data is not None:
        from edgetl.data.datasets import load_data

        fisher_loader = lambda: load_data(cfg.forgetting.fisher_data).train  # noqa: E731
    forgetting = cfg.forgetting.model_copy(update={"weight": cfg.forgetting.effective_weight}) if cfg.forgetting else None
    terms, facts, cleanup = build_terms(forgetting, model, head, data.train, seed, fisher_loader)
    settings = cfg.settings(seed)
    settings.loss, settings.metric = loss, metric
    common = {"augment": make_augment(cfg.augment), "progress": progress, "description": f"finetune {cfg.method}"}
    kd = align = None
    try:
        if getattr(cfg, "kd", None) is not None and teacher is not None:
            from edgetl.distill.kd import build_kd

            # built before LoRA/adapters wrap the model: hooks sit on the base modules, which peft keeps
            kd = build_kd(cfg.kd, teacher, model, label_smoothing=settings.label_smoothing, cache_path=kd_cache,
                          field_path="kd", task_loss=loss)
            terms = [*terms, *kd.terms]
            common["extra_params"] = kd.projector_params()
            common["description"] += " + KD"
        adapt = getattr(cfg, "adapt", None)
        if adapt is not None and adapt.method != "adabn":
            from edgetl.finetune.domain import alignment_term

            align = alignment_term(adapt, model, head, target_inputs, settings, len(data.train))
            terms = [*terms, align]
            common["extra_params"] = [*common.get("extra_params", []), *align.parameters()]
            common["description"] += f" + {adapt.method}"
        run = {"full": _full, "linear_probe": _linear_probe, "lora": _lora, "adapter": _adapter}[cfg.method]
        outcome = run(cfg, model, data, settings, terms, common)
    finally:
        cleanup()
        if kd is not None:
            kd.close()
        if align is not None:
            align.close()
    if align is not None:
        facts["adapt_alignment"] = align.stats()
    if kd is not None:
        facts["kd"] = {"temperature": cfg.kd.temperature, "alpha": cfg.kd.alpha,
                       "features": len(cfg.kd.features), "attention": cfg.kd.attention is not None, **kd.stats()}
    outcome.facts.update(facts)
    model.module.requires_grad_(True)  # later stages (pruning, QAT) get a plain, fully trainable model
    model.module.eval()
    return outcome


def _attach(terms: list[Callable], module: nn.Module) -> None:
    for t in terms:
        if hasattr(t, "attach_model"):  # hooks anywhere in the model (domain alignment)
            t.attach_model(module)
        elif hasattr(t, "attach"):
            t.attach(module.get_submodule(head_name(module)))


def _full(cfg, model: EdgeModel, data: DataBundle, settings, terms, common) -> Outcome:
    module = model.module
    module.requires_grad_(True)
    _attach(terms, module)
    groups = depth_groups(module)
    pg = None
    if cfg.lr_decay is not None or cfg.lr_groups or cfg.unfreeze:
        pg = param_groups(module, groups, cfg.lr, decay=cfg.lr_decay, explicit=cfg.lr_groups)
    unfreezer = GradualUnfreezer(module, groups, cfg.unfreeze) if cfg.unfreeze else None
    facts: dict[str, Any] = {"batchnorm": cfg.bn_policy, "depth_groups": len(groups)}
    if cfg.lr_decay is not None:
        facts["lr_decay"] = cfg.lr_decay
    if cfg.augment:
        facts["augment"] = list(cfg.augment)
    result = Trainer(model, data.train, data.eval, settings, param_groups=pg, extra_losses=terms,
                     on_epoch_start=unfreezer, train_mode=train_mode(cfg.bn_policy), **common).fit()
    if unfreezer is not None:
        facts["unfreeze"] = list(cfg.unfreeze)
    return Outcome(result, _count_trainable(module), facts)


def efficient_lr(lr: float, multiplier: float | None) -> float:
    """Rate of the few trainable parameters of LoRA/adapters: 10x the full fine-tuning rate (the usual advice
    for transformers), capped at max(lr, 1e-3) because 10x diverged on a CNN (benchmarks/results/design-notes.md)."""
    if multiplier is not None:
        return lr * multiplier
    return min(lr * 10.0, max(lr, 1e-3))


def _linear_probe(cfg, model: EdgeModel, data: DataBundle, settings, terms, common) -> Outcome:
    from edgetl.finetune.probe import fit_cached

    module = model.module
    head = head_name(module)
    freeze_except(module, lambda n: _under(n, head))
    _attach(terms, module)
    settings.lr = cfg.lr * cfg.linear_probe.lr_multiplier
    trainable = _count_trainable(module)
    head_module = module.get_submodule(head)
    cached = cfg.linear_probe.cache_features and not terms and not cfg.augment
    if cached:
        result = fit_cached(model, head_module, data.train, data.eval, settings, progress=common["progress"])
    else:
        def probe_mode(m: nn.Module) -> None:  # feature extraction: backbone in eval mode (no dropout, BN stats kept)
            m.eval()
            head_module.train()

        result = Trainer(model, data.train, data.eval, settings, extra_losses=terms, train_mode=probe_mode, **common).fit()
    return Outcome(result, trainable, {"head": head, "cached_features": cached, "head_lr": settings.lr})


def _lora(cfg, model: EdgeModel, data: DataBundle, settings, terms, common) -> Outcome:
    o = cfg.lora
    base = model.module
    peft_model, facts = lora.wrap(base, rank=o.rank, alpha=o.alpha, dropout=o.dropout, targets=o.targets)
    model.module = peft_model
    _attach(terms, peft_model)
    trainable = _count_trainable(peft_model)
    settings.lr = efficient_lr(cfg.lr, o.lr_multiplier)
    result = Trainer(model, data.train, data.eval, settings, extra_losses=terms, train_mode=train_mode(cfg.bn_policy),
                     **common).fit()
    encode = model.encoder()
    sample = data.eval.take(np.arange(min(32, len(data.eval))))
    checks = [to_torch(encode(sample.inputs[i : i + 16])) for i in range(0, len(sample), 16)]
    merged, diff = lora.merge(peft_model, checks, o.merge_atol)
    model.module = merged
    facts.update({"merge_max_abs_diff": diff, "lora_lr": settings.lr, "batchnorm": cfg.bn_policy})
    return Outcome(result, trainable, facts)


def _adapter(cfg, model: EdgeModel, data: DataBundle, settings, terms, common) -> Outcome:
    o = cfg.adapter
    module = model.module
    head = head_name(module)
    spec = adapters.plan(module, style=o.style, reduction=o.reduction, activation=o.activation, targets=o.targets)
    inject(module, spec)
    model.builder = {**model.builder, "adapters": spec}
    norms = {n for n, m in module.named_modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d))}

    def keep(name: str) -> bool:
        owner = name.rpartition(".")[0]
        return _under(name, head) or ".adapter." in f".{name}" or (o.train_norms and owner in norms)

    freeze_except(module, keep)
    _attach(terms, module)
    trainable = _count_trainable(module)
    settings.lr = efficient_lr(cfg.lr, o.lr_multiplier)
    result = Trainer(model, data.train, data.eval, settings, extra_losses=terms, train_mode=train_mode(cfg.bn_policy),
                     **common).fit()
    adapter_params = sum(p.numel() for n, p in module.named_parameters() if ".adapter." in f".{n}")
    return Outcome(result, trainable, {"adapters": len(spec["layers"]), "adapter_style": spec["style"],
                                       "adapter_params": adapter_params, "adapter_lr": settings.lr,
                                       "batchnorm": cfg.bn_policy})
