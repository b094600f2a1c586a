"""Forgetting control, as extra loss terms for the shared Trainer (usable with every method).

- EWC (Kirkpatrick et al. 2017): weight/2 * sum_i F_i (theta_i - theta*_i)^2 over the source weights, with
  the diagonal Fisher F estimated per example either on a sample of the source task (labels given) or on
  target inputs labelled by the source model's own predictions (labels sampled from its softmax).
- LwF (Li & Hoiem 2017): distill a frozen copy of the source model on the target inputs. With a fresh head
  the source logits mean nothing, so by default (`on: features`) the penultimate features (the head's
  input) are matched (MSE); `on: logits` distills temperature-softened logits (KL), for a source model
  that already has the target's labels.

The new head is never regularized (it has no source weights to remember).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from edgetl.models.base import EdgeModel, to_torch

log = logging.getLogger(__name__)


def fisher_diagonal(model: EdgeModel, raw_inputs: Any, labels: np.ndarray | None, params: dict[str, nn.Parameter],
                    seed: int) -> dict[str, torch.Tensor]:
    """Mean over examples of squared per-example gradients of the log-likelihood. labels None: sample
    each label from the model's predictive distribution (the true Fisher)."""
    module = model.module
    was = module.training
    module.eval()
    encode = model.encoder()
    gen = torch.Generator().manual_seed(seed)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    flags = {n: p.requires_grad for n, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)
    n = len(raw_inputs)
    for i in range(n):
        x = to_torch(encode(raw_inputs[i : i + 1]))
        logits = module(**x)
        logp = torch.log_softmax(logits.float(), -1)
        if labels is None:
            y = torch.multinomial(logp.detach().exp()[0], 1, generator=gen)
        else:
            y = torch.as_tensor(labels[i : i + 1])
        nll = -logp[0, y].sum()
        grads = torch.autograd.grad(nll, list(params.values()), allow_unused=True)
        for (name, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                fisher[name] += g.detach() ** 2 / n
    for name, p in params.items():
        p.requires_grad_(flags[name])
    module.train(was)
    return fisher


class EWC:
    def __init__(self, params: dict[str, nn.Parameter], fisher: dict[str, torch.Tensor], weight: float):
        self.params = params
        self.anchor = {n: p.detach().clone() for n, p in params.items()}
        self.fisher = fisher
        self.weight = weight
        total = sum(float(f.sum()) for f in fisher.values())
        log.info("ewc: %d tensors, Fisher mass %.3g, weight %g", len(params), total, weight)

    def to(self, device: torch.device) -> None:
        self.anchor = {n: t.to(device) for n, t in self.anchor.items()}
        self.fisher = {n: t.to(device) for n, t in self.fisher.items()}

    def __call__(self, inputs, labels, logits) -> torch.Tensor:
        penalty = logits.new_zeros(())
        for n, p in self.params.items():
            if p.requires_grad:
                penalty = penalty + (self.fisher[n] * (p - self.anchor[n]) ** 2).sum()
        return 0.5 * self.weight * penalty


class HeadInput:
    """Forward hook that remembers the input of the head (the penultimate features)."""

    def __init__(self, head: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = head.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.value = args[0]

    def remove(self) -> None:
        self.handle.remove()


class LwF:
    def __init__(self, source: nn.Module, teacher_head: nn.Module, *, on: str, weight: float, temperature: float):
        self.teacher = source
        self.on = on
        self.weight = weight
        self.t = temperature
        self.student_feat: HeadInput | None = None
        self.teacher_feat = HeadInput(teacher_head) if on == "features" else None

    def to(self, device: torch.device) -> None:
        self.teacher.to(device)

    def attach(self, student_head: nn.Module) -> None:
        """Hook the head the trained model really uses (peft wraps it in a copy for LoRA)."""
        if self.on == "features":
            self.student_feat = HeadInput(student_head)

    def __call__(self, inputs, labels, logits) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(**inputs)
        if self.on == "features":
            if self.student_feat is None or self.student_feat.value is None:
                raise RuntimeError("lwf on features: attach() the student's head first")
            s, t = self.student_feat.value, self.teacher_feat.value
            return self.weight * nn.functional.mse_loss(s.float(), t.float())
        log_p = torch.log_softmax(logits.float() / self.t, -1)
        q = torch.softmax(teacher_logits.float() / self.t, -1)
        return self.weight * self.t**2 * nn.functional.kl_div(log_p, q, reduction="batchmean")

    def close(self) -> None:
        for h in (self.student_feat, self.teacher_feat):
            if h is not None:
                h.remove()


def build_terms(cfg: Any, model: EdgeModel, head: str, data_train, seed: int, load_fisher_data: Callable[[], Any] | None
                ) -> tuple[list[Callable], dict[str, Any], Callable[[], None]]:
    """(extra loss terms, facts for the report, cleanup). Call before the method changes the module."""
    if cfg is None:
        return [], {}, lambda: None
    module = model.module
    params = {n: p for n, p in module.named_parameters() if not (n == head or n.startswith(head + "."))}
    if cfg.method == "ewc":
        rng = np.random.default_rng(seed)
        if load_fisher_data is not None:
            split = load_fisher_data()
            labels_from = "source-task sample"
        else:
            split = data_train
            labels_from = "model predictions on target inputs"
        idx = np.sort(rng.permutation(len(split))[: cfg.fisher_samples])
        part = split.take(idx)
        fisher = fisher_diagonal(model, part.inputs, part.labels if load_fisher_data else None, params, seed)
        term = EWC(params, fisher, cfg.weight)
        return [term], {"forgetting": "ewc", "ewc_weight": cfg.weight, "fisher_samples": len(idx),
                        "fisher_from": labels_from}, lambda: None
    teacher = copy.deepcopy(module).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    term = LwF(teacher, teacher.get_submodule(head), on=cfg.on, weight=cfg.weight, temperature=cfg.temperature)
    return [term], {"forgetting": "lwf", "lwf_weight": cfg.weight, "lwf_on": cfg.on}, term.close
