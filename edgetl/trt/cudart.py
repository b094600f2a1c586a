"""The few CUDA runtime calls the TensorRT path needs, through cuda-python (NVIDIA's own bindings, as in
TensorRT's Python samples): streams, pinned host and device buffers, async copies, events, CUDA graphs.

cuda-python returns `(error, *values)` from every call; `check` turns a non-success code into an exception
that names the call and the CUDA error.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

from edgetl.errors import BackendUnavailableError, StageError


class CudaError(StageError):
    """A CUDA runtime call failed on a machine that has CUDA."""


@functools.cache
def cudart():
    try:
        from cuda.bindings import runtime as rt  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart as rt  # older cuda-python (JetPack 6 era)
        except ImportError as exc:
            raise BackendUnavailableError("cuda-python is not installed",
                                          hint="pip install 'edgetl[trt]' (or 'edgetl[jetson]' on a Jetson)") from exc
    return rt


def check(result: Any, what: str) -> Any:
    """Unwrap a cuda-python result tuple; raise CudaError on failure."""
    rt = cudart()
    err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if err != rt.cudaError_t.cudaSuccess:
        name = rt.cudaGetErrorName(err)[1]
        text = name.decode() if isinstance(name, bytes) else str(name)
        raise CudaError(f"{what} failed: {text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class Stream:
    def __init__(self):
        self.handle = check(cudart().cudaStreamCreate(), "cudaStreamCreate")

    def __int__(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(cudart().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


class Event:
    def __init__(self):
        self.handle = check(cudart().cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(cudart().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def synchronize(self) -> None:
        check(cudart().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def elapsed_ms(self, start: Event) -> float:
        """GPU time between `start` and this event, both recorded on the same stream."""
        return float(check(cudart().cudaEventElapsedTime(start.handle, self.handle), "cudaEventElapsedTime"))

    def close(self) -> None:
        if self.handle is not None:
            check(cudart().cudaEventDestroy(self.handle), "cudaEventDestroy")
            self.handle = None


class PinnedBuffer:
    """Page-locked host memory seen as a numpy array (async copies need it to overlap with compute)."""

    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.ptr = int(check(cudart().cudaMallocHost(self.nbytes), "cudaMallocHost"))
        self.bytes = np.ctypeslib.as_array((ctypes.c_uint8 * self.nbytes).from_address(self.ptr))

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape)) if shape else 1
        return self.bytes[: count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            check(cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


class DeviceBuffer:
    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.ptr = int(check(cudart().cudaMalloc(self.nbytes), "cudaMalloc"))

    def close(self) -> None:
        if self.ptr:
            check(cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


def copy_to_device(dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
    rt = cudart()
    check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle),
          "cudaMemcpyAsync(host->device)")


def copy_to_host(dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    rt = cudart()
    check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle),
          "cudaMemcpyAsync(device->host)")


class Graph:
    """A CUDA graph captured from the work enqueued on a stream (one `execute_async_v3`), replayed with one
    launch. Valid while the captured buffer addresses and input shapes stay the same."""

    def __init__(self, stream: Stream, enqueue):
        rt = cudart()
        check(rt.cudaStreamBeginCapture(stream.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            self.graph = check(rt.cudaStreamEndCapture(stream.handle), "cudaStreamEndCapture")
        self.exec = check(rt.cudaGraphInstantiateWithFlags(self.graph, 0), "cudaGraphInstantiateWithFlags")

    def launch(self, stream: Stream) -> None:
        check(cudart().cudaGraphLaunch(self.exec, stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        rt = cudart()
        if getattr(self, "exec", None) is not None:
            check(rt.cudaGraphExecDestroy(self.exec), "cudaGraphExecDestroy")
            self.exec = None
        if getattr(self, "graph", None) is not None:
            check(rt.cudaGraphDestroy(self.graph), "cudaGraphDestroy")
            self.graph = None
