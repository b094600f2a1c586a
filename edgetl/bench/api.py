"""`edgetl.benchmark`: latency and accuracy of deployable files measured side by side, with the protocol of
`edgetl bench` (edgetl/bench/runner.py): interleaved timing at fixed threads, so the ratios between models
hold on a noisy machine; accuracy from running each file itself on the eval data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from edgetl.bench.config import BenchmarkConfig
from edgetl.result import Result

log = logging.getLogger(__name__)


def benchmark(models: Any, data: Any = None, config: BenchmarkConfig | dict[str, Any] | None = None, *,
              seed: int = 0, progress: Any = None) -> Result:
    """Measure `models`: a path or a list of them (an .onnx file with its model.json, a saved model folder for
    backend torch, an engine file, a run folder), a Result of edgetl.export_onnx, or a {name: any of those}.

    data: eval data for accuracy and real latency inputs (any form edgetl.data.inputs takes; its eval part is
    used); None: seeded random inputs and no accuracy. Returns Result(metrics={"results": {name: row},
    "machine_fingerprint", "peak_rss_mb"}), a row as `edgetl bench --json` writes it."""
    from edgetl.bench.runner import make_names_unique, target_from_path

    cfg = config if isinstance(config, BenchmarkConfig) else BenchmarkConfig.model_validate(config or {})
    targets = []
    for name, source in _named(models):
        found = target_from_path(source, name=name)
        targets += found
    if not any(name for name, _ in _named(models)):
        make_names_unique(targets)
    eval_split = label_names = None
    if data is not None:
        eval_split, label_names = _eval_split(data)
    return Result(None, None, measure(targets, cfg, eval_split=eval_split, label_names=label_names, seed=seed,
                                      progress=progress))


def measure(targets: list[Any], cfg: BenchmarkConfig, *, eval_split: Any, label_names: list[str] | None,
            seed: int = 0, progress: Any = None) -> dict[str, Any]:
    """run_benchmark with the config's options, a progress line per round; shared with the benchmark stage."""
    from edgetl.bench.runner import BenchOptions, run_benchmark

    batches = [cfg.batch_size] + [b for b in cfg.throughput_batches if b != cfg.batch_size]
    opts = BenchOptions(backends=[cfg.backend], batches=batches, threads=cfg.threads, iterations=cfg.iterations,
                        min_seconds=cfg.min_seconds, warmup_seconds=cfg.warmup_seconds, seed=seed,
                        eval_batch_size=cfg.eval_batch_size, accuracy=cfg.accuracy)
    task = progress.add_task("benchmark", total=None) if progress else None
    on_round: Callable[[str], None] | None = None
    if task is not None:
        on_round = lambda msg: progress.update(task, description=f"benchmark {msg}")  # noqa: E731
    try:
        result = run_benchmark(targets, opts, eval_split=eval_split, label_names=label_names, on_round=on_round)
    finally:
        if task is not None:
            progress.remove_task(task)
    return {"results": {row["model"]: row for row in result["results"]},
            "machine_fingerprint": result["machine_fingerprint"], "peak_rss_mb": result["peak_rss_mb"],
            "load": result["load"]}


def _named(models: Any) -> list[tuple[str | None, Path]]:
    def path_of(m: Any) -> Path:
        if isinstance(m, Result):
            if m.path is None:
                from edgetl.errors import ModelError

                raise ModelError("a Result without a file was passed where a model file was expected",
                                 hint="pass the Result of edgetl.export_onnx, or the path of an .onnx file")
            return Path(m.path)
        return Path(m)

    if isinstance(models, Mapping):
        return [(str(k), path_of(v)) for k, v in models.items()]
    if isinstance(models, (str, Path, Result)) or not isinstance(models, Iterable):
        models = [models]
    return [(None, path_of(m)) for m in models]


def _eval_split(data: Any) -> tuple[Any, list[str] | None]:
    from edgetl.data.datasets import DataBundle
    from edgetl.data.inputs import as_split

    if isinstance(data, DataBundle):
        return data.eval, data.label_names
    return as_split(data, "eval"), None
