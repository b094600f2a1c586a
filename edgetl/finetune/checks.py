"""Problems of a FinetuneConfig found before training: options that do not go with the method or the data,
and module names the source model does not have (on its architecture built with no weights). `field(name)`
gives a field's path in messages (`stages.0.lora.targets` in a recipe, `lora.targets` in the Python API)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from edgetl.finetune.config import AdaptOptions, FinetuneConfig


def option_problems(cfg: FinetuneConfig, task: str, field: Callable[[str], str]) -> list[str]:
    out: list[str] = []
    for opt in ("linear_probe", "lora", "adapter"):
        if opt in cfg.model_fields_set and cfg.method != opt:
            out.append(f"{field(opt)}: only used with method: {opt}, but method is {cfg.method}; "
                       f"remove `{opt}:` or set method: {opt}")
    for opt in ("lr_decay", "lr_groups", "unfreeze"):
        if getattr(cfg, opt) is not None and cfg.method != "full":
            out.append(f"{field(opt)}: only used with method: full (method is {cfg.method}); remove it")
    if cfg.augment and task == "text":
        out.append(f"{field('augment')}: {cfg.augment} are image augmentations but the data is text; "
                   "remove `augment:`")
    if cfg.unfreeze and max(cfg.unfreeze) >= math.ceil(cfg.epochs):
        out.append(f"{field('unfreeze')}: epoch {max(cfg.unfreeze)} never comes, training has "
                   f"{math.ceil(cfg.epochs)} epoch(s) (0-based: 0..{math.ceil(cfg.epochs) - 1}); shorten the "
                   "schedule or raise epochs")
    f = cfg.forgetting
    if f is not None and f.fisher_data is not None:
        from edgetl.data.datasets import TASKS, data_problems

        if f.method != "ewc":
            out.append(f"{field('forgetting.fisher_data')}: only used with forgetting.method: ewc")
        if TASKS[f.fisher_data.name] != task:
            out.append(f"{field('forgetting.fisher_data.name')}: {f.fisher_data.name} is "
                       f"{TASKS[f.fisher_data.name]} data but the recipe's data is {task}")
        out += [f"{field('forgetting.fisher_data')}.{p}" for p in data_problems(f.fisher_data)]
    return out


def model_problems(cfg: FinetuneConfig, task: str, model_cfg: Any, data_cfg: Any,
                   field: Callable[[str], str]) -> list[str]:
    """`adapt:` against the data and the model, and module names against the model (`model_cfg`: the recipe's
    `model:` block, built offline with no weights; skipped when it cannot be)."""
    out = []
    if cfg.adapt is not None:
        out += _adapt_problems(cfg.adapt, cfg, task, model_cfg, data_cfg, field)
    needs_arch = (cfg.unfreeze or cfg.lr_groups or (cfg.method == "lora" and cfg.lora.targets)
                  or (cfg.method == "adapter" and cfg.adapter.targets))
    if needs_arch:
        out += _arch_problems(cfg, task, model_cfg, field)
    return out


def _adapt_problems(a: AdaptOptions, cfg: FinetuneConfig, task: str, model_cfg: Any, data_cfg: Any,
                    field: Callable[[str], str]) -> list[str]:
    from edgetl.data.datasets import TASKS, target_problems

    out = []
    if a.method != "adabn" and cfg.method == "linear_probe":
        out.append(f"{field('adapt.method')}: {a.method} aligns features the backbone computes, but "
                   "linear_probe freezes the backbone; use method: full, lora or adapter, or adapt.method: adabn")
    if a.method == "adabn":
        for key in ("weight", "layer"):
            if getattr(a, key) is not None:
                out.append(f"{field('adapt.' + key)}: only used by coral, mmd and dann (adabn trains "
                           "nothing); remove it")
    if TASKS[a.target.name] != task:
        out.append(f"{field('adapt.target.name')}: {a.target.name} is {TASKS[a.target.name]} data but the "
                   f"recipe's data is {task}; the target must be the same kind of input from another place")
    elif a.target == data_cfg:
        out.append(f"{field('adapt.target')}: the target is the training data itself; give the "
                   "deployment site's data")
    out += [f"{field('adapt.target')}.{p.removeprefix('data.')}" for p in target_problems(a.target)]
    if a.layer is not None or a.method == "adabn":
        out += _adapt_arch_problems(a, task, model_cfg, field)
    return out


def _adapt_arch_problems(a: AdaptOptions, task: str, model_cfg: Any, field: Callable[[str], str]) -> list[str]:
    from torch import nn

    from edgetl.models.arch import skeleton

    module = skeleton(model_cfg, task)
    if module is None:
        return []  # not buildable offline: checked again when the stage runs
    names = [n for n, _ in module.named_modules() if n]
    if a.layer is not None and not any(n == a.layer or n.endswith("." + a.layer) for n in names):
        out = [f"{field('adapt.layer')}: {a.layer!r} is not a module of {model_cfg.source} (top-level "
               f"modules: {', '.join(n for n, _ in module.named_children())})"]
        return out
    if a.method == "adabn" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return [f"{field('adapt.method')}: adabn re-estimates BatchNorm statistics, but "
                f"{model_cfg.source} has no BatchNorm layer; use coral, mmd or dann"]
    return []


def _arch_problems(cfg: FinetuneConfig, task: str, model_cfg: Any, field: Callable[[str], str]) -> list[str]:
    from edgetl.finetune import adapters, lora
    from edgetl.finetune.layerwise import unknown_module_targets
    from edgetl.models.arch import depth_groups, skeleton

    module = skeleton(model_cfg, task)
    if module is None:
        return []  # not buildable offline: checked again when the stage runs
    src = model_cfg.source
    out = []
    if cfg.unfreeze:
        groups = depth_groups(module)
        if len(cfg.unfreeze) > len(groups):
            out.append(f"{field('unfreeze')}: the schedule has {len(cfg.unfreeze)} entries but "
                       f"{src} has only {len(groups)} depth groups ({groups.names[0]} .. "
                       f"{groups.names[-1]}); give at most {len(groups)} epochs")
    if cfg.lr_groups:
        for t in unknown_module_targets(module, list(cfg.lr_groups)):
            out.append(f"{field('lr_groups')}: {t!r} is not a module of {src} "
                       f"(top-level modules: {', '.join(n for n, _ in module.named_children())})")
    if cfg.method == "lora":
        out += [f"{field('lora.targets')}: {p} of {src}" for p in lora.target_problems(module, cfg.lora.targets)]
    if cfg.method == "adapter":
        out += [f"{field('adapter.targets')}: {p} of {src}" for p in adapters.target_problems(module, cfg.adapter.targets)]
    return out
