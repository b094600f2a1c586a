"""`benchmark`: latency and accuracy of the ONNX artifacts themselves, measured side by side in ONNX Runtime.

Accuracy comes from running each ONNX file on the eval split (never from the torch model); latency from
interleaved timing at batch 1 with a fixed thread count, so the ratios between artifacts hold on a noisy
machine.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field

from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import StageConfig
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class BenchmarkConfig(StageConfig):
    type: Literal["benchmark"] = Field(description="Measure accuracy and latency of every ONNX artifact so far.")
    backend: Literal["ort-cpu"] = Field("ort-cpu", description="Runtime to measure on (ONNX Runtime CPU here).")
    threads: int = Field(2, ge=1, le=256, description="intra-op threads of each session (fixed for comparable numbers).")
    iterations: int = Field(200, ge=10, le=1_000_000, description="Timed iterations per artifact, at least.")
    min_seconds: float = Field(0.0, ge=0, le=3600, description="Timed seconds per artifact, at least.")
    warmup_seconds: float = Field(0.3, ge=0, le=600, description="Warm-up per artifact before timing, at least.")
    batch_size: int = Field(1, ge=1, le=1024, description="Batch size of the latency measurement.")
    accuracy: bool = Field(True, description="Measure accuracy of each artifact on the eval split.")
    eval_batch_size: int = Field(64, ge=1, le=4096, description="Batch size of the accuracy pass.")
    artifacts: list[str] | None = Field(None, description="Artifact names to measure (default: every ONNX artifact).")


def latency_inputs(meta, data, batch_size: int) -> dict[str, Any]:
    """Real eval examples as the latency input; text is padded to max_length (the deployed worst case)."""
    raw = data.eval.inputs[:batch_size]
    encode = meta.encoder()
    if meta.task == "text":
        return encode(raw, pad_to_max=True)
    return encode(raw)


def measure_artifacts(ctx: StageContext, cfg: BenchmarkConfig, targets: list[Artifact]) -> dict[str, dict[str, Any]]:
    import numpy as np

    from edgetl.backends.onnxruntime import make_session, predict, session_inputs
    from edgetl.bench.fingerprint import device_fingerprint
    from edgetl.bench.protocol import summarize, time_interleaved
    from edgetl.runtime.meta import read_onnx_meta

    data = ctx.data()
    results: dict[str, dict[str, Any]] = {}
    runners = {}
    for art in targets:
        path = ctx.path_of(art)
        meta = read_onnx_meta(path)
        session = make_session(path, threads=cfg.threads, backend=cfg.backend)
        res: dict[str, Any] = {"backend": cfg.backend, "threads": cfg.threads, "batch_size": cfg.batch_size,
                               "size_bytes": art.size_bytes, "fingerprint": device_fingerprint(cfg.threads, cfg.backend)}
        if cfg.accuracy:
            logits = predict(session, meta.encoder(), data.eval.inputs, batch_size=cfg.eval_batch_size)
            res["accuracy"] = float((logits.argmax(-1) == data.eval.labels).mean())
            res["eval_samples"] = int(len(data.eval))
            log.info("%s: accuracy %.4f on %d eval examples", art.name, res["accuracy"], len(data.eval))
        feed = session_inputs(session, latency_inputs(meta, data, cfg.batch_size))
        res["input_shapes"] = {k: list(np.shape(v)) for k, v in feed.items()}
        runners[art.name] = (lambda s=session, f=feed: s.run(None, f))
        results[art.name] = res
    task = ctx.progress.add_task("benchmark", total=None) if ctx.progress else None
    samples = time_interleaved(runners, iterations=cfg.iterations, min_seconds=cfg.min_seconds,
                               warmup_seconds=cfg.warmup_seconds, seed=ctx.recipe.seed,
                               on_round=(lambda r: ctx.progress.update(task, description=f"benchmark round {r}"))
                               if task is not None else None)
    if task is not None:
        ctx.progress.remove_task(task)
    for name, raw in samples.items():
        results[name]["latency_ms"] = summarize(raw)
        results[name]["raw_ms"] = [round(x, 4) for x in raw]
        stats = results[name]["latency_ms"]
        log.info("%s: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms (CoV %.1f %%, n=%d)", name, stats["p50"], stats["p90"],
                 stats["p99"], 100 * stats["cov"], stats["n"])
    return results


class BenchmarkStage(Stage):
    type = "benchmark"
    Config = BenchmarkConfig
    default_name = "benchmark"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        if not plan.has("onnx"):
            return [f"{self.field('type')}: benchmark needs an ONNX artifact: put an `export` stage before it"]
        return []

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.errors import RecipeError

        cfg: BenchmarkConfig = self.config  # type: ignore[assignment]
        onnx_arts = [a for a in ctx.artifacts.values() if a.format == "onnx"]
        if cfg.artifacts:
            unknown = [n for n in cfg.artifacts if n not in {a.name for a in onnx_arts}]
            if unknown:
                raise RecipeError(f"{self.field('artifacts')}: no ONNX artifact named {unknown}; "
                                  f"have {[a.name for a in onnx_arts]}")
            onnx_arts = [a for a in onnx_arts if a.name in cfg.artifacts]
        ctx.metrics["results"] = measure_artifacts(ctx, cfg, onnx_arts)
        return []
