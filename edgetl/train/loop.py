"""The one training loop every training stage shares (fine-tuning, pruning recovery, distillation, QAT).

Losses are pluggable: the task loss (cross-entropy with label smoothing) plus any number of extra terms
(knowledge distillation, EWC, ...) that see the batch and the model's logits.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from edgetl.data.datasets import Split, iter_batches
from edgetl.errors import NonFiniteError
from edgetl.models.base import EdgeModel, to_torch
from edgetl.train.batchnorm import (
    MIN_MOMENTUM,
    PRECISE_BN_BATCHES,
    raise_momentum,
    reestimate_batchnorm,
    training_batchnorms,
)
from edgetl.train.finite import nonfinite

log = logging.getLogger(__name__)

# An extra loss term: (inputs, labels, logits) -> scalar tensor
LossTerm = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainSettings:
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    schedule: str = "cosine"  # cosine | linear | constant
    label_smoothing: float = 0.0
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    early_stopping: int | None = None  # epochs without improvement before stopping
    eval_batch_size: int = 128
    max_steps: int | None = None
    seed: int = 0
    device: str | None = None  # None: cuda when available, else cpu; the module is back on the cpu after fit()
    amp: bool = True  # bfloat16 autocast, on cuda only
    ddp: bool = True  # under torchrun (WORLD_SIZE > 1): DistributedDataParallel, each rank a slice of each batch
    # API callers' own task loss and eval metric; None: cross-entropy (with label_smoothing) and top-1 accuracy
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # (logits, labels) -> scalar
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None  # (logits, labels) -> higher is better


@dataclass
class TrainResult:
    best_accuracy: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@torch.no_grad()
def predict_logits(model: EdgeModel, inputs: Any, batch_size: int = 128) -> np.ndarray:
    module = model.module
    was_training = module.training
    module.eval()
    encode = model.encoder()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    outs = []
    n = len(inputs)
    for start in range(0, n, batch_size):
        chunk = inputs[start : start + batch_size]
        batch = {k: v.to(device) for k, v in to_torch(encode(chunk)).items()}
        outs.append(module(**batch).float().cpu().numpy())
    module.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0, model.num_labels), dtype=np.float32)


def evaluate(model: EdgeModel, split: Split, batch_size: int = 128,
             metric: Callable[[np.ndarray, np.ndarray], float] | None = None) -> float:
    """Top-1 accuracy on `split`, or `metric(logits, labels)` when one is given."""
    logits = predict_logits(model, split.inputs, batch_size)
    bad = nonfinite(eval_logits=logits)
    if bad:  # argmax of a NaN row is class 0: an accuracy computed from it would look like a real one
        raise NonFiniteError(f"{model.source} gives NaN or infinite outputs on the eval split ({bad})",
                             hint="an earlier stage diverged or the model's weights are broken; rerun it with a "
                                  "lower learning rate")
    return score(logits, split.labels, metric)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean()) if len(labels) else float("nan")


def score(logits: np.ndarray, labels: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float] | None) -> float:
    """The eval number that picks the best epoch: top-1 accuracy, or the caller's metric (higher is better)."""
    return accuracy(logits, labels) if metric is None else float(metric(logits, labels))


def diverged(description: str, epoch: int, step: int, what: str, lr: float) -> NonFiniteError:
    """The error that stops a training loop whose loss or eval logits stopped being finite numbers."""
    return NonFiniteError(
        f"{description}: training diverged at epoch {epoch}, step {step}: {what} (learning rate {lr:.3g})",
        hint="lower the stage's learning rate (`lr`, `lr_groups`, `lr_multiplier`), keep `grad_clip` on, or check "
             "the data for extreme values; nothing of this stage was kept")


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        progress = min(max(progress, 0.0), 1.0)
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


class Trainer:
    def __init__(self, model: EdgeModel, train: Split, eval_split: Split, settings: TrainSettings, *,
                 param_groups: list[dict[str, Any]] | None = None, extra_losses: Iterable[LossTerm] = (),
                 extra_params: Iterable[nn.Parameter] = (),
                 augment: Callable[[Any, np.random.Generator], Any] | None = None,
                 on_epoch_start: Callable[[int], None] | None = None,
                 train_mode: Callable[[nn.Module], None] | None = None, progress=None, description: str = "train"):
        self.model = model
        self.train_split = train
        self.eval_split = eval_split
        self.s = settings
        self.param_groups = param_groups
        self.extra_losses = list(extra_losses)
        self.extra_params = list(extra_params)  # trained too, outside the model (e.g. KD projectors)
        self.augment = augment
        self.on_epoch_start = on_epoch_start
        self.train_mode = train_mode or (lambda m: m.train())
        self.progress = progress
        self.description = description

    def _optimizer(self) -> torch.optim.Optimizer:
        groups = self.param_groups
        if groups is None:
            params = [p for p in self.model.module.parameters() if p.requires_grad]
            groups = [{"params": params}]
        if self.extra_params:
            groups = [*groups, {"params": self.extra_params}]
        return torch.optim.AdamW(groups, lr=self.s.lr, weight_decay=self.s.weight_decay)

    def fit(self) -> TrainResult:
        import contextlib
        import os

        from edgetl.train.distributed import maybe_init, rank_and_world, shard, wrap_ddp

        s = self.s
        seed_everything(s.seed)
        module = self.model.module
        distributed = s.ddp and maybe_init()
        rank, world = rank_and_world() if distributed else (0, 1)
        device = torch.device(s.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and distributed and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        module.to(device)
        for term in self.extra_losses:
            if hasattr(term, "to"):
                term.to(device)
        amp = s.amp and device.type == "cuda"
        runner: nn.Module = module
        wrapped_for: frozenset[int] | None = None
        encode = self.model.encoder()
        n = len(self.train_split)
        steps_per_epoch = max(1, math.ceil(n / s.batch_size / s.grad_accum))
        epochs = max(1, math.ceil(s.epochs))
        total = int(math.ceil(steps_per_epoch * s.epochs))
        if s.max_steps:
            total = min(total, s.max_steps)
        opt = self._optimizer()
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(s.schedule, int(total * s.warmup_ratio), total))
        ce = s.loss or nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
        rng = np.random.default_rng(s.seed)
        best_acc, best_epoch, best_state = -1.0, -1, None
        history: list[dict[str, float]] = []
        step, stale = 0, 0
        start = time.perf_counter()
        task = self.progress.add_task(self.description, total=total) if self.progress else None
        for epoch in range(epochs):
            if step >= total:
                break
            if self.on_epoch_start:
                self.on_epoch_start(epoch)
            self.train_mode(module)
            norms = training_batchnorms(module)
            if raise_momentum(norms):
                log.info("%s: BatchNorm momentum raised to %s while training (the checkpoint's is lower)",
                         self.description, MIN_MOMENTUM)
            if distributed:  # (re)wrap when the trainable set changed (gradual unfreezing)
                trainable = frozenset(id(p) for p in module.parameters() if p.requires_grad)
                if trainable != wrapped_for:
                    runner, wrapped_for = wrap_ddp(module, device), trainable
            running, count = 0.0, 0
            opt.zero_grad(set_to_none=True)
            for micro, (raw, labels) in enumerate(iter_batches(self.train_split, s.batch_size, shuffle=True, seed=s.seed + epoch)):
                if self.augment is not None:
                    raw = self.augment(raw, rng)
                if world > 1:
                    if len(labels) < world:  # a last global batch too small to give every rank an example
                        continue
                    raw, labels = shard(raw, labels, rank, world)
                inputs = {k: v.to(device) for k, v in to_torch(encode(raw)).items()}
                y = torch.from_numpy(labels).to(device)
                syncing = not distributed or (micro + 1) % s.grad_accum == 0
                with (contextlib.nullcontext() if syncing else runner.no_sync()):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = runner(**inputs)
                        loss = ce(logits.float(), y)
                        for term in self.extra_losses:
                            loss = loss + term(inputs, y, logits)
                    (loss / s.grad_accum).backward()
                value = float(loss.detach())
                # under DDP one rank stopping alone would leave the others waiting; they stop together on the
                # gradient norm below, which DDP's all-reduce makes the same on every rank
                if not math.isfinite(value) and not distributed:
                    raise diverged(self.description, epoch + 1, step + 1, f"the loss is {value}", sched.get_last_lr()[0])
                running += value * len(y)
                count += len(y)
                if (micro + 1) % s.grad_accum == 0:
                    if s.grad_clip:
                        norm = float(torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]],
                                                                    s.grad_clip))
                        if not math.isfinite(norm):
                            raise diverged(self.description, epoch + 1, step + 1, f"the gradient norm is {norm}",
                                           sched.get_last_lr()[0])
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    step += 1
                    if task is not None:
                        self.progress.update(task, advance=1, description=f"{self.description} e{epoch + 1} loss {running / max(count, 1):.3f}")
                    if step >= total:
                        break
            if norms:  # judge this epoch with statistics of its own weights, not a lagging moving average
                reestimate_batchnorm(self.model, self.train_split, PRECISE_BN_BATCHES, s.batch_size,
                                     s.seed + epoch, layers=norms)
            logits = predict_logits(self.model, self.eval_split.inputs, s.eval_batch_size)
            bad = nonfinite(eval_logits=logits)
            if bad:
                raise diverged(self.description, epoch + 1, step, bad, sched.get_last_lr()[0])
            acc = score(logits, self.eval_split.labels, s.metric)
            history.append({"epoch": epoch + 1, "train_loss": running / max(count, 1), "eval_accuracy": acc})
            log.info("%s epoch %d: loss %.4f, eval accuracy %.4f", self.description, epoch + 1, running / max(count, 1), acc)
            if acc > best_acc:
                best_acc, best_epoch, stale = acc, epoch + 1, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                stale += 1
                if s.early_stopping and stale >= s.early_stopping:
                    log.info("early stopping after epoch %d (best %d)", epoch + 1, best_epoch)
                    break
        if task is not None:
            self.progress.remove_task(task)
        if best_state is not None:
            module.load_state_dict(best_state)
        module.to("cpu")
        for term in self.extra_losses:
            if hasattr(term, "to"):
                term.to(torch.device("cpu"))
        module.eval()
        return TrainResult(best_acc, best_epoch, history, round(time.perf_counter() - start, 3), step)
