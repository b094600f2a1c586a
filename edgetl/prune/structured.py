"""Structured pruning of an EdgeModel on torch-pruning's dependency graph.

CNNs: output channels of every prunable group (residual adds and depthwise convs are coupled by the graph).
BERT-family transformers: whole attention heads and FFN neurons; the hidden size stays. Widths stay
multiples of `round_to`, because unaligned channel counts lose most of the speed-up on CPU kernels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edgetl.errors import RecipeError, StageError
from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)

IMPORTANCES = ("l1", "l2", "bn_scale", "taylor")


class PruneError(StageError):
    """Pruning could not run or removed nothing."""


def make_importance(name: str):
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise RecipeError(f"importance: {name!r} is not one of {', '.join(IMPORTANCES)}")


def classifier_head(module: nn.Module, num_labels: int) -> nn.Module | None:
    """The last Linear that outputs the labels: never pruned (its outputs are the classes)."""
    head = None
    for m in module.modules():
        if isinstance(m, nn.Linear) and m.out_features == num_labels:
            head = m
    return head


def layer_widths(module: nn.Module) -> dict[str, int]:
    """Output width per Conv/Linear layer (channels / features), plus attention heads for transformers."""
    from edgetl.models.encoder import hf_layers

    widths: dict[str, int] = {}
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            widths[name] = int(m.out_channels)
        elif isinstance(m, nn.Linear):
            widths[name] = int(m.out_features)
    for name, m in module.named_modules():
        if m in set(hf_layers(module) or []):
            att = m.attention.self
            widths[f"{name}.attention.heads"] = int(att.query.out_features // att.attention_head_size)
    return widths


def frozen_parameters(module: nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters() if not p.requires_grad]


class StructuredPruner:
    """torch-pruning's MetaPruner set up for an EdgeModel; `step()` prunes one scheduled increment."""

    def __init__(self, model: EdgeModel, *, importance: str = "l2", global_pruning: bool = False,
                 pruning_ratio: float = 0.5, head_ratio: float | None = None, steps: int = 1, round_to: int | None = 8,
                 max_layer_ratio: float = 0.9, ignored: list[str] = (), heads: bool = True, ffn: bool = True,
                 gradient_fn: Callable[[], None] | None = None, protect: bool = True):
        import torch_pruning as tp

        module = model.module
        frozen = frozen_parameters(module)
        if frozen:
            raise PruneError(
                f"{len(frozen)} parameters do not require grad (e.g. {', '.join(frozen[:3])}); torch-pruning builds its "
                "dependency graph from autograd and would silently prune nothing",
                hint="call module.requires_grad_(True) first (peft's merge_and_unload() leaves base weights frozen)",
            )
        if importance == "taylor" and gradient_fn is None:
            raise RecipeError("importance: taylor needs gradients; pass training data (gradient_fn)")
        self.model = model
        self.gradient_fn = gradient_fn if importance == "taylor" else None
        ignored_modules: list[nn.Module] = []
        head = classifier_head(module, model.num_labels)
        if head is not None:
            ignored_modules.append(head)
        for name in ignored:
            if any(c in name for c in "*?["):  # a glob over module names, e.g. features.*.conv.2
                import fnmatch

                found = [m for n, m in module.named_modules() if n and fnmatch.fnmatchcase(n, name)]
                if found:
                    ignored_modules += found
                    continue
            else:
                try:
                    ignored_modules.append(module.get_submodule(name))
                    continue
                except AttributeError:
                    pass
            sample = [n for n, _ in module.named_modules() if n][:8]
            raise RecipeError(f"ignored_layers: the model has no module {name!r}",
                              hint=f"use module names (globs allowed) such as {', '.join(sample)}")
        unsupported = unsupported_architecture(module, model.task)
        if unsupported:
            raise PruneError(unsupported, hint="prune a CNN (channels) or a BERT-family text model (heads, FFN "
                                               "neurons); drop the prune stage for this model")
        self.protected: dict[str, str] = {}
        if protect and model.task == "image":
            from edgetl.prune.protect import protected_layers

            self.protected = protected_layers(module, model.example_inputs(batch=1))
            ignored_modules += [module.get_submodule(n) for n in self.protected]
        num_heads: dict[nn.Module, int] = {}
        self.is_transformer = model.task == "text"
        if self.is_transformer:
            num_heads, extra = bert_plan(module, heads=heads, ffn=ffn)
            ignored_modules += extra
        kwargs: dict[str, Any] = {}
        if num_heads:
            kwargs.update(num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
                          head_pruning_ratio=pruning_ratio if head_ratio is None else head_ratio)
        module.eval()
        self.pruner = tp.pruner.MetaPruner(
            module, model.example_inputs(batch=1), importance=make_importance(importance),
            global_pruning=global_pruning, pruning_ratio=pruning_ratio, max_pruning_ratio=max_layer_ratio,
            iterative_steps=steps, ignored_layers=ignored_modules, round_to=round_to, **kwargs,
        )
        self.steps = steps
        self.done = 0
        # torch-pruning 1.6.1 removes ceil(ratio * current heads) per layer at each iterative step of local
        # pruning (relative to the heads left, not the initial ones), which over-prunes after step 1; the
        # schedule is rewritten before each step so the count left follows the initial heads.
        self._local_heads = bool(num_heads) and not global_pruning
        if self._local_heads:
            first = next(iter(num_heads))
            self._head_size = int(first.out_features // num_heads[first])
            self._first_qkv = first
            self._initial_heads = int(num_heads[first])
            self._head_schedule = list(self.pruner.per_step_head_pruning_ratio)

    @property
    def exhausted(self) -> bool:
        return self.done >= self.steps

    def step(self) -> None:
        module = self.model.module
        if self.gradient_fn is not None:
            module.zero_grad(set_to_none=True)
            self.gradient_fn()
        if self._local_heads:
            k = self.pruner.current_step + 1
            current = int(self._first_qkv.out_features // self._head_size)
            keep = max(1, int(self._initial_heads * (1 - self._head_schedule[k]) + 1e-9))
            self.pruner.per_step_head_pruning_ratio[k] = max(current - keep - 0.5, 0.0) / current
        self.pruner.step()
        self.done += 1
        module.zero_grad(set_to_none=True)
        if self.is_transformer:
            from edgetl.models.encoder import fix_attention_attrs

            fix_attention_attrs(module)


def unsupported_architecture(module: nn.Module, task: str) -> str | None:
    """Why structured pruning cannot handle this model, or None. Attention in an image model (ViT, DeiT, Swin)
    has head and token layouts that the CNN channel rules would cut apart."""
    if task != "image":
        return None
    found = next((type(m).__name__ for m in module.modules() if "attention" in type(m).__name__.lower()), None)
    if found:
        return (f"prune: image models with attention ({found}) are not supported; structured pruning handles CNN "
                "channels and BERT-family heads and FFN neurons")
    return None


def hf_image_transformer(source: str) -> str | None:
    """The model_type of an `hf:` folder whose config describes an image transformer, for `validate`."""
    import json
    from pathlib import Path

    if not source.startswith("hf:"):
        return None
    config = Path(source[3:]) / "config.json"
    try:
        cfg = json.loads(config.read_text())
    except (OSError, ValueError):
        return None  # a hub id: checked when the model loads
    kind = str(cfg.get("model_type", ""))
    image_transformers = ("vit", "deit", "beit", "swin", "swinv2", "dinov2", "levit", "mobilevit", "mobilevitv2")
    return kind if kind in image_transformers else None


def bert_plan(module: nn.Module, *, heads: bool, ffn: bool):
    from edgetl.prune.transformer import bert_pruning_plan

    return bert_pruning_plan(module, heads=heads, ffn=ffn)


def taylor_gradients(model: EdgeModel, split, batches: int, batch_size: int, seed: int,
                     loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> Callable[[], None]:
    """Accumulates gradients of the task loss (default: cross-entropy) over a few training batches (Taylor
    importance needs them)."""
    from edgetl.data.datasets import iter_batches
    from edgetl.models.base import to_torch

    def run() -> None:
        encode = model.encoder()
        module = model.module
        module.eval()
        for i, (raw, labels) in enumerate(iter_batches(split, batch_size, shuffle=True, seed=seed)):
            if i >= batches:
                break
            logits = module(**to_torch(encode(raw)))
            (loss or torch.nn.functional.cross_entropy)(logits, torch.from_numpy(labels)).backward()

    return run


def recalibrate_batchnorm(model: EdgeModel, split, batches: int, batch_size: int, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running statistics on training batches after pruning.

    Removing channels shifts the activations every later BatchNorm sees, while its running mean/var still
    describe the unpruned network: in eval mode the pruned model then predicts near-constant logits even when
    it is fine with batch statistics. Returns the number of BatchNorm layers updated (0 without BatchNorm)."""
    from edgetl.train.batchnorm import reestimate_batchnorm

    return reestimate_batchnorm(model, split, batches, batch_size, seed)
