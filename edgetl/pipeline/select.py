"""Choosing the source model from a recipe: `model: {source: auto, candidates: [...]}` and `edgetl rank`.

Candidates are loaded the way `model.source` would load them, scored with edgetl.transfer on a stratified
sample of the recipe's training split, and timed. For `source: auto` the runner swaps in the chosen source
before any stage key is computed, so the choice is part of every key; the ranking is kept in
`RUN/selection.json` (reused while model, data, seed and the user's files are unchanged) and reported under
`model_selection`. `verify` fine-tunes every candidate with the recipe's finetune stage and measures how
well each score predicted the accuracy reached.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgetl.errors import RecipeError
from edgetl.recipe.schema import SELECTION_FIELDS, ModelConfig, RecipeBase
from edgetl.runtime.files import stable_hash, write_json_atomic

log = logging.getLogger(__name__)
SELECTION_FILE = "selection.json"
SELECTION_VERSION = 1  # bump when scores or their inputs change meaning, so old selections are not reused
FEATURE_BATCH = 64


def candidate_config(model: ModelConfig, candidate: str) -> ModelConfig:
    """`model` with `candidate` as its source and the selection fields dropped: the config a recipe that
    names the candidate directly would have (so both share stage keys)."""
    fields = model.model_dump(exclude=set(SELECTION_FIELDS), exclude_unset=True)
    return ModelConfig.model_validate({**fields, "source": candidate})


def rank_candidates(model: ModelConfig, data, candidates: Iterable[str], *, metrics: Iterable[str] | None = None,
                    samples: int = 1000, seed: int = 0, latency_iterations: int = 30) -> dict[str, Any]:
    """Score every candidate on `samples` training examples of `data` (a DataBundle) and time it. Returns
    the plain dict `edgetl rank` writes (rank.json): candidates with scores, seconds spent, sample facts."""
    import torch
    from threadpoolctl import threadpool_limits

    from edgetl.data.datasets import stratified_subset
    from edgetl.transfer.rank import METRICS, measure_latency

    metrics = list(metrics or METRICS)
    sample = data.train.take(stratified_subset(data.train.labels, samples, seed))
    started = time.perf_counter()
    results, models = [], {}  # type: ignore[var-annotated]
    # numpy's BLAS gets torch's thread count: its default (every core, spinning while it waits) slows the
    # scores' SVDs by an order of magnitude on a machine whose cores other work shares
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
        for name in candidates:
            results.append(_score_one(model, data, sample, name, metrics, models))
    scored = time.perf_counter()
    latency = measure_latency(models, iterations=latency_iterations) if latency_iterations else {}
    for r in results:
        r.latency_ms = latency.get(r.name)
    end = time.perf_counter()
    return {
        "data": data.source, "samples": len(sample), "classes": data.num_labels, "metrics": metrics,
        "candidates": [r.to_dict() for r in results],
        "seconds": {"features": round(sum(r.feature_seconds for r in results), 3),
                    "scores": round(sum(r.score_seconds for r in results), 3),
                    "scoring_total": round(scored - started, 3), "latency": round(end - scored, 3),
                    "total": round(end - started, 3)},
    }


def _score_one(model: ModelConfig, data, sample, name: str, metrics: list[str], models: dict[str, Any]):
    from edgetl.data.datasets import iter_batches
    from edgetl.models.zoo import load_source
    from edgetl.transfer.heads import source_head
    from edgetl.transfer.rank import score_model

    cfg = candidate_config(model, name)
    loaded = load_source(cfg, data.task, data.label_names)
    head = source_head(name, loaded, pretrained=cfg.pretrained, revision=cfg.revision,
                       trust_remote_code=cfg.trust_remote_code)
    batches = (raw for raw, _ in iter_batches(sample, FEATURE_BATCH))
    models[name] = loaded
    return score_model(name, loaded, batches, sample.labels, source_head=head.module, source_note=head.note,
                       metrics=metrics)


def order(result: dict[str, Any], by: str, max_latency_ms: float | None = None) -> dict[str, Any]:
    """`result` with its `ranking` (best first by `by`, and the candidates left out with why)."""
    from edgetl.transfer.rank import CandidateScore, rank

    ranking = rank([CandidateScore.from_dict(c) for c in result["candidates"]], by, max_latency_ms=max_latency_ms)
    return {**result, "ranking": {"by": ranking.by, "order": ranking.order, "excluded": ranking.excluded,
                                  "chosen": ranking.chosen, "max_latency_ms": max_latency_ms}}


# ---------------------------------------------------------------- source: auto


def selection_key(recipe: RecipeBase) -> str:
    """What a ranking depends on: model and data config, seed, edgetl version, user data and model folders."""
    from edgetl.pipeline.fingerprint import (
        HashCache,
        local_model_folder,
        path_fingerprint,
        recipe_fingerprint,
    )

    hashes = HashCache()
    inputs = recipe_fingerprint(recipe, hashes)
    folders = {c: path_fingerprint(f, hashes) for c in recipe.model.candidates or []
               if (f := local_model_folder(c)) is not None}
    hashes.save()
    return stable_hash({"v": SELECTION_VERSION, "model": recipe.model.model_dump(mode="json"),
                        "data": recipe.data.model_dump(mode="json"), "seed": recipe.seed, "inputs": inputs,
                        "folders": folders})


def select_source(recipe: RecipeBase, out_dir: Path) -> dict[str, Any]:
    """The ranking behind `source: auto` (from RUN/selection.json when still valid, else computed and saved)."""
    import json

    path = out_dir / SELECTION_FILE
    key = selection_key(recipe)
    try:
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            log.info("model.source auto: reusing the ranking in %s: %s", path.name, saved["ranking"]["chosen"])
            return {**saved, "reused": True}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # none yet, or unreadable: rank again
    from edgetl.data.datasets import load_data

    m = recipe.model
    data = load_data(recipe.data)
    log.info("model.source auto: scoring %d candidates by %s on %d training examples", len(m.candidates or []),
             m.rank_by, min(m.rank_samples, len(data.train)))
    result = rank_candidates(m, data, m.candidates or [], samples=m.rank_samples, seed=recipe.data.split_seed,
                             latency_iterations=30)
    selection = {"key": key, "requested": "auto", "candidates": list(m.candidates or []),
                 **order(result, m.rank_by, m.max_latency_ms)}
    write_json_atomic(path, selection)
    log.info("model.source auto: chose %s (%s)", selection["ranking"]["chosen"],
             ", ".join(selection["ranking"]["order"]))
    return {**selection, "reused": False}


def resolve_auto(recipe: RecipeBase, out_dir: Path, *, rank: int = 0, world: int = 1
                 ) -> tuple[RecipeBase, dict[str, Any] | None]:
    """(the recipe with `source: auto` replaced by the chosen candidate, the ranking); a recipe with a concrete
    source comes back as it is, with None. Under torchrun rank 0 ranks and the other ranks read its choice."""
    import json

    if recipe.model.source != "auto":
        return recipe, None
    if rank == 0:
        selection = select_source(recipe, out_dir)
    if world > 1:
        from edgetl.train.distributed import barrier

        barrier()
    if rank != 0:
        selection = {**json.loads((out_dir / SELECTION_FILE).read_text()), "reused": True}
    chosen = selection["ranking"]["chosen"]
    resolved = recipe.model_copy(update={"model": candidate_config(recipe.model, chosen)})
    return resolved, {k: v for k, v in selection.items() if k != "key"}


# ---------------------------------------------------------------- edgetl rank --verify


def _folder_name(index: int, candidate: str) -> str:
    return f"{index:02d}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", candidate)[-60:]


def finetune_candidates(recipe: RecipeBase, candidates: list[str], out_dir: Path) -> dict[str, dict[str, Any]]:
    """Fine-tune each candidate with the recipe's first finetune stage alone, each in OUT/verify/<candidate>
    (a rerun reuses finished ones). Returns candidate -> {accuracy, seconds, status}."""
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.schema import Targets

    stage = next((s for s in recipe.stages if s.type == "finetune"), None)
    if stage is None:
        raise RecipeError(f"--verify fine-tunes each candidate with the recipe's finetune stage, but {recipe.name} "
                          f"has none (stages: {', '.join(s.type for s in recipe.stages)})",
                          hint="add a `type: finetune` stage to the recipe")
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(candidates):
        one = recipe.model_copy(update={"name": f"{recipe.name}-verify-{i:02d}",
                                        "model": candidate_config(recipe.model, name),
                                        "stages": [stage], "targets": Targets()})
        report = compress(one, out_dir / "verify" / _folder_name(i, name))
        s = report["stages"][0]
        m = s["metrics"]
        out[name] = {"accuracy": m["best_eval_accuracy"], "seconds": s["seconds"], "status": s["status"],
                     "train_seconds": m.get("train_seconds")}
        log.info("verify %s: fine-tuned accuracy %.4f (%s, %.1f s)", name, m["best_eval_accuracy"], s["status"],
                 s["seconds"])
    return out


def verify(result: dict[str, Any], finetuned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How well each score predicted the fine-tuned accuracy, and what the ranking cost against fine-tuning."""
    from edgetl.transfer.rank import CandidateScore, agreement

    accuracy = {k: v["accuracy"] for k, v in finetuned.items()}
    ft_total = sum(v["seconds"] for v in finetuned.values())
    return {
        "accuracy": accuracy,
        "finetune_seconds": {k: v["seconds"] for k, v in finetuned.items()},
        "finetune_seconds_total": round(ft_total, 3),
        "agreement": agreement([CandidateScore.from_dict(c) for c in result["candidates"]], accuracy,
                               result["metrics"]),
        # the ranking's own cost: loading, features and scores (latency timing is an extra column of the table)
        "cost_share": round(result["seconds"]["scoring_total"] / ft_total, 4) if ft_total > 0 else None,
    }
