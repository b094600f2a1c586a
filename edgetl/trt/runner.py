"""Run a TensorRT engine with the TensorRT 10+ tensor-address API.

Static buffers sized for the profile's largest shapes are allocated once (pinned host + device) and bound with
`set_tensor_address`, so an inference is: copy into pinned memory, async host->device, `execute_async_v3`
(or one CUDA graph launch), async device->host, sync. CUDA events around the execute give GPU compute time
next to the host end-to-end time, as the benchmark protocol asks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import DataError, ModelError
from edgetl.trt.cudart import (
    CudaError,
    DeviceBuffer,
    Event,
    Graph,
    PinnedBuffer,
    Stream,
    capture_graph,
    check,
    copy_to_device,
    copy_to_host,
    cudart,
    native_handle,
)

log = logging.getLogger(__name__)


@dataclass
class TensorSpec:
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]  # -1 for dynamic
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None


def profile_violation(name: str, shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> str | None:
    """Why `shape` does not fit the engine's optimisation profile [lo, hi], or None."""
    if len(shape) != len(hi) or len(lo) != len(hi):
        return f"input {name!r} has {len(shape)} dimensions {shape}; the engine takes {len(hi)} ({lo}..{hi})"
    bad = [i for i, (d, a, b) in enumerate(zip(shape, lo, hi, strict=True)) if not a <= d <= b]
    if bad:
        return (f"input {name!r} has shape {shape}, outside the engine's profile {lo}..{hi} "
                f"(dimension {', '.join(map(str, bad))})")
    return None


def io_dtype(trt: Any, name: str, is_input: bool, trt_dtype: Any) -> np.dtype:
    """The numpy dtype of an engine input or output. `trt.nptype` raises TypeError for the types numpy has
    none of (BF16, FP8, INT4, FP4): such an engine is refused with what to change instead."""
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError:
        kind = getattr(trt_dtype, "name", str(trt_dtype))
        raise ModelError(
            f"the engine's {'input' if is_input else 'output'} {name!r} is {kind}, which edgetl cannot feed or "
            "read (numpy has no such type; supported I/O types: float32, float16, int8, int32, int64, bool, uint8)",
            hint="export the model with float32 or float16 inputs and outputs (a Cast at the graph's edges keeps "
                 "BF16/FP8 inside the network), then rebuild the engine") from None


class Enqueue:
    """`execute_async_v3` on one stream, or its replay as a CUDA graph.

    A graph holds what TensorRT enqueued for the input shapes set when it was captured, so one graph is kept,
    for exactly those shapes: a run with other shapes (a last, smaller chunk) destroys it and captures again.
    Capture follows trtexec (sampleInference.cpp): a plain enqueue first, so TensorRT's shape-dependent setup
    stays out of the graph, then capture; when the engine cannot be captured (execute_async_v3 returns False
    under capture, or the capture is invalidated) the capture is ended, the partial graph destroyed, the CUDA
    error cleared, and this and every later run use plain enqueue.

    `context` needs only `execute_async_v3`, `rt` only the cuda-python runtime calls, so a test can drive
    this with fakes of both."""

    def __init__(self, context: Any, stream: Any, *, use_cuda_graph: bool = False, rt: Any = None):
        self.context, self.stream = context, stream
        self.rt = rt or cudart()
        self.use_cuda_graph = use_cuda_graph
        self.graph: Graph | None = None
        self.graph_shapes: tuple | None = None
        self._stream_ptr = native_handle(stream)

    def _try(self) -> bool:
        return bool(self.context.execute_async_v3(self._stream_ptr))

    def _plain(self) -> None:
        if not self._try():
            raise ModelError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def drop_graph(self) -> None:
        if self.graph is not None:
            self.graph.close()
        self.graph, self.graph_shapes = None, None

    def __call__(self, shapes: tuple) -> None:
        """Run once on the bound buffers, with `shapes` the input shapes set on the context."""
        if not self.use_cuda_graph:
            self._plain()
            return
        if self.graph is not None and self.graph_shapes == shapes:
            self.graph.launch(self.stream)
            return
        self.drop_graph()  # a graph is valid only for the shapes it was captured with
        self._plain()  # this run's result, and TensorRT's setup for these shapes outside the capture
        check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize", self.rt)
        try:
            graph = capture_graph(self.stream, self._try, self.rt)
            why = "the engine has work CUDA graph capture does not allow"
        except CudaError as exc:
            graph, why = None, str(exc)
        if graph is None:
            log.warning("CUDA graph capture failed (%s); running without CUDA graphs", why)
            self.use_cuda_graph = False
            return
        self.graph, self.graph_shapes = graph, shapes


class TrtSession:
    def __init__(self, engine: str | Path | bytes, *, use_cuda_graph: bool = False):
        from edgetl.trt.device import require_tensorrt

        trt = require_tensorrt()
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        data = engine if isinstance(engine, bytes) else Path(engine).read_bytes()
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise ModelError(f"TensorRT {trt.__version__} could not load the engine {engine if not isinstance(engine, bytes) else ''}",
                             hint="engines only load on the TensorRT version and GPU they were built with: rebuild it "
                                  "here with `edgetl build-engine MODEL.onnx`")
        self.context = self.engine.create_execution_context()
        self.stream = Stream()
        self.start, self.end = Event(), Event()
        self.enqueue = Enqueue(self.context, self.stream.handle, use_cuda_graph=use_cuda_graph)
        self.specs: list[TensorSpec] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = io_dtype(trt, name, is_input, self.engine.get_tensor_dtype(name))
            spec = TensorSpec(name, is_input, dtype, tuple(self.engine.get_tensor_shape(name)))
            if is_input:
                lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
                spec.min_shape, spec.max_shape = tuple(lo), tuple(hi)
            self.specs.append(spec)
        self.input_names = [s.name for s in self.specs if s.is_input]
        self.output_names = [s.name for s in self.specs if not s.is_input]
        # output sizes at the largest input shapes
        for s in self.specs:
            if s.is_input:
                self.context.set_input_shape(s.name, s.max_shape)
        self.host: dict[str, PinnedBuffer] = {}
        self.device: dict[str, DeviceBuffer] = {}
        for s in self.specs:
            shape = (s.max_shape or ()) if s.is_input else tuple(self.context.get_tensor_shape(s.name))
            nbytes = int(np.prod(shape)) * s.dtype.itemsize
            self.host[s.name] = PinnedBuffer(nbytes)
            self.device[s.name] = DeviceBuffer(nbytes)
            self.context.set_tensor_address(s.name, self.device[s.name].ptr)
        self._shapes: dict[str, tuple[int, ...]] = {}
        self.last_gpu_ms: float | None = None

    @property
    def use_cuda_graph(self) -> bool:
        """Whether runs replay a CUDA graph (False after a failed capture)."""
        return self.enqueue.use_cuda_graph

    def max_batch(self) -> int | None:
        first = next((s for s in self.specs if s.is_input), None)
        return int(first.max_shape[0]) if first and first.max_shape else None

    def io(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "mode": "input" if s.is_input else "output", "dtype": s.dtype.name,
                 "shape": list(s.shape), "min": list(s.min_shape or []), "max": list(s.max_shape or [])}
                for s in self.specs]

    # ---- one inference, in parts (the benchmark times `execute` on bound inputs)
    def bind(self, feeds: dict[str, np.ndarray]) -> None:
        """Check shapes against the profile, set them, and copy the inputs into the pinned buffers."""
        for s in self.specs:
            if not s.is_input:
                continue
            if s.name not in feeds:
                raise DataError(f"the engine needs input {s.name!r}; got {', '.join(feeds) or 'none'}")
            arr = np.asarray(feeds[s.name])
            problem = profile_violation(s.name, tuple(arr.shape), s.min_shape or (), s.max_shape or ())
            if problem:
                raise DataError(problem, hint="rebuild the engine with wider --shapes (e.g. batch=1:1:64), or send "
                                              "smaller batches")
            if arr.dtype != s.dtype:
                if not np.can_cast(arr.dtype, s.dtype, casting="same_kind"):
                    raise DataError(f"input {s.name!r} is {arr.dtype}; the engine takes {s.dtype}")
                arr = arr.astype(s.dtype)
            shape = tuple(int(d) for d in arr.shape)
            if self._shapes.get(s.name) != shape:
                if not self.context.set_input_shape(s.name, shape):
                    raise DataError(f"TensorRT refused shape {shape} for input {s.name!r}")
                self._shapes[s.name] = shape
            np.copyto(self.host[s.name].view(s.dtype, shape), arr)

    def execute(self) -> None:
        """Copy in, run, copy out, sync: one host end-to-end inference on the bound inputs. GPU compute time
        of the run itself is left in `last_gpu_ms`."""
        for name in self.input_names:
            copy_to_device(self.device[name], self.host[name], self._nbytes(name), self.stream)
        self.start.record(self.stream)
        self.enqueue(tuple(sorted(self._shapes.items())))
        self.end.record(self.stream)
        for name in self.output_names:
            copy_to_host(self.host[name], self.device[name], self._nbytes(name), self.stream)
        self.stream.synchronize()
        self.last_gpu_ms = self.end.elapsed_ms(self.start)

    def _nbytes(self, name: str) -> int:
        spec = next(s for s in self.specs if s.name == name)
        shape = self._shapes[name] if spec.is_input else tuple(self.context.get_tensor_shape(name))
        return int(np.prod(shape)) * spec.dtype.itemsize

    def outputs(self) -> dict[str, np.ndarray]:
        out = {}
        for s in self.specs:
            if not s.is_input:
                shape = tuple(self.context.get_tensor_shape(s.name))
                out[s.name] = self.host[s.name].view(s.dtype, shape).copy()
        return out

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.bind({k: v for k, v in feeds.items() if k in self.input_names})
        self.execute()
        return self.outputs()

    def timed(self) -> tuple[float, float]:
        """(host end-to-end ms, GPU compute ms) of one inference on the bound inputs."""
        t0 = time.perf_counter()
        self.execute()
        return (time.perf_counter() - t0) * 1000, float(self.last_gpu_ms or 0.0)

    def close(self) -> None:
        self.enqueue.drop_graph()
        for pinned in self.host.values():
            pinned.close()
        for buf in self.device.values():
            buf.close()
        self.start.close()
        self.end.close()
        self.stream.close()
