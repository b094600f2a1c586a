"""Timing protocol shared by the `benchmark` stage and `edgetl bench`: warm up until stable, then time
variants interleaved (round-robin chunks in shuffled order) so a noisy, shared machine slows them all alike
and their ratios stay meaningful. Raw per-iteration timings are kept."""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)
NOISY_COV = 0.10  # coefficient of variation above which a run is flagged noisy


def summarize(samples_ms: list[float]) -> dict[str, float | int | bool]:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no timings to summarize")
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    cov = std / mean if mean > 0 else 0.0
    return {
        "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)), "max": float(a.max()), "min": float(a.min()), "mean": mean, "std": std,
        "cov": cov, "n": int(a.size), "noisy": bool(cov > NOISY_COV),
    }


def warm_up(fn: Callable[[], object], min_seconds: float = 0.2, min_iters: int = 5, max_seconds: float = 10.0) -> int:
    """Run until min_seconds and min_iters have passed and the running median has settled (within 5 %)."""
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if elapsed > max_seconds:
            break
        if elapsed < min_seconds or len(times) < min_iters:
            continue
        if len(times) >= 20:
            recent, before = statistics.median(times[-10:]), statistics.median(times[-20:-10])
            if abs(recent - before) <= 0.05 * before:
                break
        elif elapsed >= 4 * min_seconds:  # a slow model: a handful of runs is all the warm-up time allows
            break
    return len(times)


def time_interleaved(fns: dict[str, Callable[[], object]], *, iterations: int = 200, min_seconds: float = 0.0,
                     chunk: int = 20, warmup_seconds: float = 0.2, seed: int = 0,
                     on_round: Callable[[int], None] | None = None,
                     warmup_counts: dict[str, int] | None = None,
                     cpu_samples: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Per-iteration wall times in ms for each function, measured in interleaved chunks. When given,
    `warmup_counts` receives the number of warm-up iterations each function needed, and `cpu_samples` the
    process CPU time of each iteration in ms (all threads; on a machine shared with other work it stays near
    the true compute time while wall time grows with preemption)."""
    for name, fn in fns.items():
        n = warm_up(fn, min_seconds=warmup_seconds)
        if warmup_counts is not None:
            warmup_counts[name] = n
    samples: dict[str, list[float]] = {name: [] for name in fns}
    spent = {name: 0.0 for name in fns}
    order = list(fns)
    rng = random.Random(seed)
    clock = time.perf_counter_ns
    cpu_clock = time.process_time_ns
    if cpu_samples is not None:
        for name in fns:
            cpu_samples[name] = []
    rounds = 0
    while any(len(samples[n]) < iterations or spent[n] < min_seconds for n in order):
        rng.shuffle(order)
        for name in order:
            fn = fns[name]
            bucket = samples[name]
            if cpu_samples is None:
                for _ in range(chunk):
                    t0 = clock()
                    fn()
                    dt = (clock() - t0) / 1e6
                    bucket.append(dt)
                    spent[name] += dt / 1e3
            else:
                cpu_bucket = cpu_samples[name]
                for _ in range(chunk):
                    c0 = cpu_clock()
                    t0 = clock()
                    fn()
                    dt = (clock() - t0) / 1e6
                    cpu_bucket.append((cpu_clock() - c0) / 1e6)
                    bucket.append(dt)
                    spent[name] += dt / 1e3
        rounds += 1
        if on_round:
            on_round(rounds)
    return samples
