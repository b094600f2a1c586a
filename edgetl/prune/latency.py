"""Latency of a model as deployed: export to ONNX, time it in ONNX Runtime (batch 1, fixed threads),
interleaved with the unpruned reference so the ratio holds on a shared, noisy machine."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)


class LatencyProbe:
    def __init__(self, reference: EdgeModel, raw_inputs: Any, *, threads: int = 2, iterations: int = 60,
                 warmup_seconds: float = 0.2, opset: int = 17, seed: int = 0):
        self.threads = threads
        self.iterations = iterations
        self.warmup_seconds = warmup_seconds
        self.opset = opset
        self.seed = seed
        self.raw = raw_inputs
        self.folder = Path(tempfile.mkdtemp(prefix="edgetl-prune-lat-"))
        self.reference = self._runner(reference, "reference")
        self.count = 0

    def _runner(self, model: EdgeModel, tag: str):
        from edgetl.backends.onnxruntime import session_inputs
        from edgetl.export.onnx import torch_to_onnx
        from edgetl.runtime.ort import make_session
        from edgetl.runtime.preprocess import latency_feed

        path = self.folder / f"{tag}.onnx"
        torch_to_onnx(model, path, self.opset)
        session = make_session(path, threads=self.threads)
        feed = session_inputs(session, latency_feed(model.encoder(), self.raw[:1], model.task))
        return lambda: session.run(None, feed)

    def measure(self, model: EdgeModel) -> dict[str, float]:
        """p50 ms of `model` and of the reference, timed interleaved."""
        from edgetl.bench.protocol import summarize, time_interleaved

        self.count += 1
        current = self._runner(model, f"step{self.count}")
        samples = time_interleaved({"current": current, "reference": self.reference}, iterations=self.iterations,
                                   warmup_seconds=self.warmup_seconds, seed=self.seed + self.count, chunk=10)
        cur, ref = summarize(samples["current"]), summarize(samples["reference"])
        return {"p50_ms": cur["p50"], "reference_p50_ms": ref["p50"], "speedup": ref["p50"] / cur["p50"],
                "cov": cur["cov"], "n": cur["n"]}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
