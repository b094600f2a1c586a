"""The few CUDA runtime calls the TensorRT path needs, through cuda-python (NVIDIA's own bindings, as in
TensorRT's Python samples): streams, pinned host and device buffers, async copies, events, CUDA graphs.

cuda-python returns `(error, *values)` from every call; `check` turns a non-success code into an exception
that names the call and the CUDA error.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
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


def check(result: Any, what: str, rt: Any = None) -> Any:
    """Unwrap a cuda-python result tuple; raise CudaError on failure."""
    rt = rt or cudart()
    err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if err != rt.cudaError_t.cudaSuccess:
        name = rt.cudaGetErrorName(err)[1]
        text = name.decode() if isinstance(name, bytes) else str(name)
        raise CudaError(f"{what} failed: {text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def native_handle(obj: Any) -> int:
    """The address behind a cuda-python handle (a stream for TensorRT's `execute_async_v3`). cuda-python
    12.9.1 and 13 deprecate `int(obj)` for `cuda.bindings.utils.get_cuda_native_handle`; older ones have only
    `int(obj)`."""
    if isinstance(obj, int):
        return obj
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(obj)
    return int(get_cuda_native_handle(obj))


class Stream:
    def __init__(self):
        self.handle = check(cudart().cudaStreamCreate(), "cudaStreamCreate")

    def __int__(self) -> int:
        return native_handle(self.handle)

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
    """An instantiated CUDA graph (the work one `execute_async_v3` enqueued), replayed with one launch. Valid
    while the captured buffer addresses and input shapes stay the same."""

    def __init__(self, exec_handle: Any, rt: Any = None):
        self.rt = rt or cudart()
        self.exec = exec_handle

    def launch(self, stream: Any) -> None:
        check(self.rt.cudaGraphLaunch(self.exec, stream), "cudaGraphLaunch", self.rt)

    def close(self) -> None:
        if self.exec is not None:
            check(self.rt.cudaGraphExecDestroy(self.exec), "cudaGraphExecDestroy", self.rt)
            self.exec = None


def _end_capture_on_error(rt: Any, stream: Any) -> None:
    """End a capture that failed, destroy whatever graph it left and clear the sticky CUDA error, as
    trtexec's TrtCudaGraph::endCaptureOnError does: an invalidated capture returns no graph, a capture
    TensorRT gave up on returns one that must not be used."""
    result = rt.cudaStreamEndCapture(stream)
    err, graph = result[0], (result[1] if len(result) > 1 else None)
    if err == rt.cudaError_t.cudaSuccess and graph is not None:
        check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy", rt)
    rt.cudaGetLastError()
    if err not in (rt.cudaError_t.cudaSuccess, rt.cudaError_t.cudaErrorStreamCaptureInvalidated):
        check(result, "cudaStreamEndCapture", rt)


def capture_graph(stream: Any, enqueue: Callable[[], bool], rt: Any = None) -> Graph | None:
    """Capture what `enqueue` puts on `stream` into an instantiated graph, or None when the work cannot be
    captured (`enqueue` returned False under capture, or the capture was invalidated); the stream is then out
    of capture mode and the CUDA error cleared, so plain enqueues go on working. trtexec's order
    (sampleInference.cpp): run `enqueue` once outside capture before calling this."""
    rt = rt or cudart()
    check(rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
          "cudaStreamBeginCapture", rt)
    try:
        ok = bool(enqueue())
    except BaseException:
        _end_capture_on_error(rt, stream)
        raise
    if not ok:
        _end_capture_on_error(rt, stream)
        return None
    err, graph = rt.cudaStreamEndCapture(stream)[:2]
    if err == rt.cudaError_t.cudaErrorStreamCaptureInvalidated:  # something in the capture was not allowed
        rt.cudaGetLastError()
        return None
    check((err, graph), "cudaStreamEndCapture", rt)
    try:
        exec_handle = check(rt.cudaGraphInstantiateWithFlags(graph, 0), "cudaGraphInstantiateWithFlags", rt)
    finally:  # the instantiated graph does not need its template (trtexec destroys it right away too)
        check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy", rt)
    return Graph(exec_handle, rt)
