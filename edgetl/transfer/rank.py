"""Score candidate models on one labelled sample, time them, order them, and check an order against the
accuracy fine-tuning reached (Kendall tau, Spearman)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgetl.errors import ModelError
from edgetl.transfer import scores

log = logging.getLogger(__name__)

METRICS = ("logme", "leep", "nce", "hscore", "hscore_reg")
NEEDS_SOURCE_HEAD = ("leep", "nce")
METRIC_TITLES = {"logme": "LogME", "leep": "LEEP", "nce": "NCE", "hscore": "H-score", "hscore_reg": "H-score (LW)"}


@dataclass
class CandidateScore:
    name: str
    scores: dict[str, float]  # metric -> value (higher is better)
    skipped: dict[str, str]  # metric -> why it was not computed
    samples: int
    feature_dim: int
    feature_seconds: float  # forward passes over the sample
    score_seconds: float  # all metrics on the features
    source_head: str  # where LEEP/NCE's source classifier comes from, or why there is none
    params: int | None = None
    macs: int | None = None
    latency_ms: dict[str, Any] | None = None  # eager FP32, batch 1: p50, p90, ... (edgetl.bench.protocol)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateScore:
        return cls(**data)


def hscore_saturated(samples: int, dims: int) -> str | None:
    """Why the plain H-score says nothing here, or None: with no more samples than feature dimensions the
    features' covariance is singular and its pseudo-inverse makes every model score classes - 1."""
    if samples > dims:
        return None
    return (f"{samples} samples <= {dims} feature dimensions: H-score is classes - 1 for any features "
            "(use hscore_reg)")


def score_features(features: np.ndarray, labels: np.ndarray, source_probs: np.ndarray | None,
                   metrics: Iterable[str] = METRICS, no_head_reason: str = "no source classifier"
                   ) -> tuple[dict[str, float], dict[str, str]]:
    """Every requested metric on one candidate's features; LEEP and NCE only with `source_probs`."""
    values: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for metric in metrics:
        if metric not in METRICS:
            raise ModelError(f"unknown transferability metric {metric!r}; expected one of {', '.join(METRICS)}")
        if metric in NEEDS_SOURCE_HEAD:
            if source_probs is None:
                skipped[metric] = no_head_reason
            elif metric == "leep":
                values[metric] = scores.leep(source_probs, labels)
            else:
                values[metric] = scores.nce(np.argmax(source_probs, axis=1), labels)
        elif metric == "logme":
            values[metric] = scores.logme(features, labels)
        elif metric == "hscore":
            if why := hscore_saturated(*np.shape(features)):
                skipped[metric] = why
            else:
                values[metric] = scores.h_score(features, labels)
        else:
            values[metric] = scores.h_score(features, labels, shrinkage=True)
    return values, skipped


def score_model(name: str, model, batches: Iterable, labels: np.ndarray, *, source_head=None,
                source_note: str = "no source classifier", metrics: Iterable[str] = METRICS) -> CandidateScore:
    """Frozen features of `model` on `batches` (raw inputs whose labels are `labels`, in order), scored."""
    from edgetl.models.macs import model_macs
    from edgetl.transfer.features import extract_features

    feats = extract_features(model, batches, source_head)
    labels = np.asarray(labels)
    if len(labels) != len(feats.features):
        raise ModelError(f"{name}: {len(feats.features)} feature vectors for {len(labels)} labels; the batches "
                         "and the labels must describe the same examples")
    t0 = time.perf_counter()
    values, skipped = score_features(feats.features, labels, feats.source_probs, metrics, source_note)
    score_seconds = time.perf_counter() - t0
    try:
        macs, params = model_macs(model)
    except Exception as exc:  # noqa: BLE001 - MACs are a table fact; never fail the ranking over them
        log.debug("could not count MACs of %s: %s", name, exc)
        macs, params = None, model.parameter_count()
    log.info("%s: %d x %d features in %.1f s; %s", name, *feats.features.shape, feats.seconds,
             ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return CandidateScore(name, values, skipped, int(feats.features.shape[0]), int(feats.features.shape[1]),
                          round(feats.seconds, 3), round(score_seconds, 3), source_note, params, macs)


def measure_latency(models: dict[str, Any], *, iterations: int = 30, warmup_seconds: float = 0.2
                    ) -> dict[str, dict[str, Any]]:
    """Eager FP32 batch-1 latency of each model at its own input size, timed interleaved (a shared machine
    slows all of them alike, so their order holds)."""
    import torch

    from edgetl.bench.protocol import summarize, time_interleaved

    fns: dict[str, Callable[[], object]] = {}
    for name, model in models.items():
        module, inputs = model.module.eval(), model.example_inputs(batch=1)

        def run(module=module, inputs=inputs):
            with torch.inference_mode():
                module(**inputs)

        fns[name] = run
    samples = time_interleaved(fns, iterations=iterations, warmup_seconds=warmup_seconds)
    return {name: summarize(ms) for name, ms in samples.items()}


@dataclass
class Ranking:
    by: str
    order: list[str]  # best first, among the candidates that have the score and meet the latency budget
    excluded: dict[str, str] = field(default_factory=dict)  # candidate -> why it is not in `order`

    @property
    def chosen(self) -> str:
        return self.order[0]


def rank(candidates: list[CandidateScore], by: str = "logme", *, max_latency_ms: float | None = None) -> Ranking:
    """Candidates ordered by score `by` (best first); with `max_latency_ms`, only those whose p50 latency is
    within it. A ModelError when none is left."""
    if by not in METRICS:
        raise ModelError(f"rank_by {by!r} is not a transferability metric; expected one of {', '.join(METRICS)}")
    kept, excluded = [], {}
    for c in candidates:
        p50 = (c.latency_ms or {}).get("p50")
        if by not in c.scores:
            excluded[c.name] = f"no {by}: {c.skipped.get(by, 'not computed')}"
        elif max_latency_ms is None:
            kept.append(c)
        elif p50 is None:
            excluded[c.name] = "latency not measured"
        elif p50 > max_latency_ms:
            excluded[c.name] = f"p50 latency {p50:.2f} ms > max_latency_ms {max_latency_ms:g}"
        else:
            kept.append(c)
    if not kept:
        raise ModelError(
            f"no candidate can be chosen by {by}" + (f" within {max_latency_ms:g} ms" if max_latency_ms else ""),
            problems=[f"{name}: {why}" for name, why in excluded.items()],
            hint="rank by logme (every model has features), add candidates, or raise model.max_latency_ms",
        )
    kept.sort(key=lambda c: -c.scores[by])
    return Ranking(by, [c.name for c in kept], excluded)


# ---------------------------------------------------------------- agreement with fine-tuning


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # ties share the mean of their ranks
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of the average ranks (NaN when either side is constant)."""
    a, b = _average_ranks(np.asarray(x, float)), _average_ranks(np.asarray(y, float))
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a @ a) * (b @ b)))
    return float(a @ b / denom) if denom > 0 else math.nan


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (ties in either variable corrected), by counting pairs; NaN when either is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom > 0 else math.nan


def agreement(candidates: list[CandidateScore], accuracy: dict[str, float],
              metrics: Iterable[str] = METRICS) -> dict[str, dict[str, Any]]:
    """Per metric: Kendall tau and Spearman rho between the scores and the accuracy each candidate reached,
    the metric's top pick, the truly best model, and how many points of accuracy the pick leaves behind."""
    best = max(accuracy, key=lambda k: accuracy[k])
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        scored = [c for c in candidates if metric in c.scores and c.name in accuracy]
        if len(scored) < 2:
            continue
        s = [c.scores[metric] for c in scored]
        a = [accuracy[c.name] for c in scored]
        pick = scored[int(np.argmax(s))].name
        out[metric] = {
            "kendall_tau": kendall_tau(s, a), "spearman": spearman(s, a), "candidates": len(scored),
            "top_pick": pick, "best_model": best, "top_pick_is_best": accuracy[pick] == accuracy[best],
            "top_pick_gap_points": round(100 * (accuracy[best] - accuracy[pick]), 3),
        }
    return out
