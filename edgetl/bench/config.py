"""Configuration of a benchmark (`edgetl.benchmark`, the `benchmark` recipe stage). Light: pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgetl.recipe.schema import StrictModel


class BenchmarkConfig(StrictModel):
    backend: Literal["ort-cpu", "ort-cuda", "ort-trt", "torch", "tensorrt"] = Field(
        "ort-cpu", description="Runtime to measure on: ort-cpu (ONNX Runtime CPU), ort-cuda / ort-trt (ONNX Runtime GPU "
        "providers), tensorrt (engines), torch (eager PyTorch artifacts).")
    threads: int = Field(2, ge=1, le=256, description="intra-op threads of each session (fixed for comparable numbers).")
    iterations: int = Field(200, ge=10, le=1_000_000, description="Timed iterations per artifact, at least.")
    min_seconds: float = Field(0.0, ge=0, le=3600, description="Timed seconds per artifact, at least.")
    warmup_seconds: float = Field(0.3, ge=0, le=600, description="Warm-up per artifact before timing, at least.")
    batch_size: int = Field(1, ge=1, le=1024, description="Batch size of the latency measurement.")
    throughput_batches: list[int] = Field(
        default_factory=list, description="Extra batch sizes of an offline throughput sweep (e.g. [8, 32]); empty: none.")
    accuracy: bool = Field(True, description="Measure accuracy of each artifact on the eval split.")
    eval_batch_size: int = Field(64, ge=1, le=4096, description="Batch size of the accuracy pass.")
