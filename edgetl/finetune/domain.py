"""The `finetune` stage's `adapt:` option: unsupervised domain adaptation (edgetl/adapt/) to the unlabelled
inputs of the deployment site, with source-only numbers next to the adapted ones, on the target's labelled eval
split (when it has one) and on the source's."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from edgetl.adapt.align import Batches, DomainAlignment
from edgetl.data.datasets import DataBundle, Split, TargetData
from edgetl.errors import DataError
from edgetl.models.base import EdgeModel
from edgetl.train.loop import TrainSettings, evaluate, seed_everything

log = logging.getLogger(__name__)
TARGET_BATCH_SEED = 1  # seed offset of the target batches: not the same shuffle as the source's
ADABN_BATCH = 256  # examples per BatchNorm pass: each layer normalises a batch by its own statistics meanwhile


def alignment_term(adapt: Any, model: EdgeModel, head: str, target_inputs: Any, settings: TrainSettings,
                   n_train: int) -> DomainAlignment:
    """The coral/mmd/dann loss term for the Trainer: one target batch (of the training batch size) per source
    batch; DANN's schedule runs over the training's micro-batches."""
    if target_inputs is None or len(target_inputs) == 0:
        raise DataError(f"adapt.method {adapt.method} needs target inputs, and the target data has none",
                        hint="check adapt.target")
    batches = Batches(target_inputs, settings.batch_size, model.encoder(), seed=settings.seed + TARGET_BATCH_SEED)
    calls = math.ceil(math.ceil(n_train / settings.batch_size) * settings.epochs)
    if settings.max_steps:
        calls = min(calls, settings.max_steps * settings.grad_accum)
    return DomainAlignment(adapt.method, model.module, batches, weight=adapt.effective_weight, layer=adapt.layer,
                           head=None if adapt.layer else head, total_calls=calls)


def _accuracy(model: EdgeModel, split: Split | None) -> float | None:
    return None if split is None or len(split) == 0 else round(evaluate(model, split), 4)


def check_labels(target: TargetData, data: DataBundle) -> None:
    if target.eval is not None and target.label_names != data.label_names:
        raise DataError(f"adapt.target: its labels {(target.label_names or [])[:10]} are not the training data's "
                        f"{data.label_names[:10]}; target accuracy can only be measured on the same classes",
                        hint="give the target's class folders the training data's class names, or leave its "
                             "images unlabelled (directly in the folder, no class folders)")


def run_adapted(cfg: Any, model: EdgeModel, data: DataBundle, target: TargetData, seed: int,
                train: Callable[[Any, EdgeModel], Any]) -> tuple[Any, dict]:
    """Fine-tune `model` with `cfg.adapt`; `train(cfg, model)` runs the fine-tuning method (and its alignment
    term when cfg.adapt is set). The source-only copy is trained first, from a copy of the untrained model.
    Returns the method's outcome and the facts for the report."""
    from edgetl.adapt.adabn import adabn

    adapt = cfg.adapt
    check_labels(target, data)
    facts: dict[str, Any] = {"method": adapt.method, "target": target.source, "target_inputs": len(target.inputs),
                             "target_eval_examples": len(target.eval) if target.eval is not None else 0}
    if adapt.method == "adabn":
        outcome = train(cfg, model)
        facts["source_only"] = {"target_accuracy": _accuracy(model, target.eval),  # trained, before AdaBN
                                "source_accuracy": _accuracy(model, data.eval), "train_seconds": outcome.result.seconds}
        start = time.perf_counter()
        facts.update(adabn(model.module, Batches(target.inputs, ADABN_BATCH, model.encoder(), seed=seed)))
        facts["adapt_seconds"] = round(time.perf_counter() - start, 3)
    else:
        facts["weight"] = adapt.effective_weight
        facts["layer"] = adapt.layer or "head input"
        if adapt.source_only:
            base = copy.deepcopy(model)  # the same starting weights (and new head) as the adapted model
            base_outcome = train(cfg.model_copy(update={"adapt": None}), base)
            facts["source_only"] = {"target_accuracy": _accuracy(base, target.eval),
                                    "source_accuracy": _accuracy(base, data.eval),
                                    "train_seconds": base_outcome.result.seconds}
            del base
            seed_everything(seed)
        outcome = train(cfg, model)
        facts.update(outcome.facts.pop("adapt_alignment", {}))
        facts["train_seconds"] = outcome.result.seconds
    facts["target_accuracy"] = _accuracy(model, target.eval)
    facts["source_accuracy"] = _accuracy(model, data.eval)
    before = facts.get("source_only", {})
    if facts["target_accuracy"] is not None and before.get("target_accuracy") is not None:
        facts["target_gain"] = round(facts["target_accuracy"] - before["target_accuracy"], 4)
    log.info("adapt %s: target accuracy %s (source-only %s), source accuracy %s (source-only %s)", adapt.method,
             facts["target_accuracy"], before.get("target_accuracy"), facts["source_accuracy"],
             before.get("source_accuracy"))
    return outcome, facts
