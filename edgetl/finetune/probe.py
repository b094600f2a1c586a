"""Linear probe on cached features: the frozen backbone runs once (eval mode) over the train and eval
sets, recording the head's input; then only the head trains, epochs cost a matrix multiply. Same
optimizer, schedule, label smoothing, clipping and early stopping as the shared Trainer, and the same
result the uncached probe would give without dropout (the backbone is in eval mode either way)."""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
from torch import nn

from edgetl.data.datasets import Split, iter_batches
from edgetl.finetune.regularizers import HeadInput
from edgetl.models.base import EdgeModel, to_torch
from edgetl.train.loop import TrainResult, TrainSettings, diverged, lr_lambda, score, seed_everything

log = logging.getLogger(__name__)


@torch.no_grad()
def head_features(model: EdgeModel, head: nn.Module, split: Split, batch_size: int = 128) -> torch.Tensor:
    module = model.module.eval()
    encode = model.encoder()
    hook = HeadInput(head)
    feats = []
    try:
        for raw, _ in iter_batches(split, batch_size):
            module(**to_torch(encode(raw)))
            feats.append(hook.value.detach().float().clone())
    finally:
        hook.remove()
    return torch.cat(feats) if feats else torch.zeros(0)


def fit_cached(model: EdgeModel, head: nn.Linear, train: Split, eval_split: Split, s: TrainSettings,
               progress=None) -> TrainResult:
    seed_everything(s.seed)
    start = time.perf_counter()
    xtr = head_features(model, head, train, s.eval_batch_size)
    xev = head_features(model, head, eval_split, s.eval_batch_size)
    ytr, yev = torch.from_numpy(train.labels), torch.from_numpy(eval_split.labels)
    log.info("linear probe: cached %d train and %d eval feature vectors of size %d in %.1f s",
             len(xtr), len(xev), xtr.shape[1], time.perf_counter() - start)
    n = len(xtr)
    steps_per_epoch = max(1, math.ceil(n / s.batch_size / s.grad_accum))
    epochs = max(1, math.ceil(s.epochs))
    total = int(math.ceil(steps_per_epoch * s.epochs))
    if s.max_steps:
        total = min(total, s.max_steps)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(s.schedule, int(total * s.warmup_ratio), total))
    ce = s.loss or nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
    best_acc, best_epoch, best_state, stale, step = -1.0, -1, None, 0, 0
    history: list[dict[str, float]] = []
    task = progress.add_task("linear probe", total=total) if progress else None
    for epoch in range(epochs):
        if step >= total:
            break
        head.train()
        running, count = 0.0, 0
        opt.zero_grad(set_to_none=True)
        order = np.random.default_rng(s.seed + epoch).permutation(n)
        for micro, begin in enumerate(range(0, n, s.batch_size)):
            idx = torch.from_numpy(order[begin : begin + s.batch_size])
            loss = ce(head(xtr[idx]), ytr[idx])
            (loss / s.grad_accum).backward()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise diverged("linear probe", epoch + 1, step + 1, f"the loss is {value}", sched.get_last_lr()[0])
            running += value * len(idx)
            count += len(idx)
            if (micro + 1) % s.grad_accum == 0:
                if s.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                if task is not None:
                    progress.update(task, advance=1)
                if step >= total:
                    break
        head.eval()
        with torch.no_grad():
            logits = head(xev)
            if len(xev) and not bool(torch.isfinite(logits).all()):
                raise diverged("linear probe", epoch + 1, step, "the eval logits hold NaN or infinite values",
                               sched.get_last_lr()[0])
            if s.metric is not None:
                acc = score(logits.numpy(), yev.numpy(), s.metric)
            else:
                acc = float((logits.argmax(-1) == yev).float().mean()) if len(xev) else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": running / max(count, 1), "eval_accuracy": acc})
        log.info("linear probe epoch %d: loss %.4f, eval accuracy %.4f", epoch + 1, running / max(count, 1), acc)
        if acc > best_acc:
            best_acc, best_epoch, stale = acc, epoch + 1, 0
            best_state = copy.deepcopy(head.state_dict())
        else:
            stale += 1
            if s.early_stopping and stale >= s.early_stopping:
                break
    if task is not None:
        progress.remove_task(task)
    if best_state is not None:
        head.load_state_dict(best_state)
    model.module.eval()
    return TrainResult(best_acc, best_epoch, history, round(time.perf_counter() - start, 3), step)
