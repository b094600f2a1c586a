"""CUDA graph capture and its fallback, driven by a fake of the CUDA runtime (cuda-python's call shapes) and of
TensorRT's execute_async_v3: the control flow is edgetl's own (`Enqueue`, `capture_graph`)."""

from enum import IntEnum

import pytest

from edgetl.errors import ModelError
from edgetl.trt.cudart import capture_graph
from edgetl.trt.runner import Enqueue

STREAM = 0x7F00


class FakeRuntime:
    """cuda-python's runtime module as far as graph capture goes: `(error, *values)` results, a sticky error
    after a failed capture that `cudaGetLastError` clears, graphs that remember what was enqueued into them."""

    class cudaError_t(IntEnum):  # cuda-python's names
        cudaSuccess = 0
        cudaErrorStreamCaptureInvalidated = 901

    class cudaStreamCaptureMode(IntEnum):
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self, invalidate_capture=False):
        self.invalidate_capture = invalidate_capture
        self.capturing = False
        self.captured: list = []
        self.sticky = self.cudaError_t.cudaSuccess
        self.live_graphs: set[int] = set()
        self.live_execs: dict[int, tuple] = {}
        self.launched: list[tuple] = []
        self.next_id = 1

    def _new(self) -> int:
        self.next_id += 1
        return self.next_id

    def cudaGetErrorName(self, err):
        return self.cudaError_t.cudaSuccess, self.cudaError_t(err).name.encode()

    def cudaStreamSynchronize(self, stream):
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamBeginCapture(self, stream, mode):
        assert stream == STREAM and not self.capturing
        self.capturing, self.captured = True, []
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamEndCapture(self, stream):
        self.capturing = False
        if self.invalidate_capture or self.sticky:
            self.sticky = self.cudaError_t.cudaErrorStreamCaptureInvalidated
            return self.cudaError_t.cudaErrorStreamCaptureInvalidated, None
        graph = self._new()
        self.live_graphs.add(graph)
        self.graph_work = {graph: tuple(self.captured)}
        return self.cudaError_t.cudaSuccess, graph

    def cudaGraphInstantiateWithFlags(self, graph, flags):
        exec_handle = self._new()
        self.live_execs[exec_handle] = self.graph_work[graph]
        return self.cudaError_t.cudaSuccess, exec_handle

    def cudaGraphDestroy(self, graph):
        self.live_graphs.discard(graph)
        return (self.cudaError_t.cudaSuccess,)

    def cudaGraphExecDestroy(self, exec_handle):
        del self.live_execs[exec_handle]
        return (self.cudaError_t.cudaSuccess,)

    def cudaGraphLaunch(self, exec_handle, stream):
        if self.sticky:
            return (self.sticky,)
        self.launched.append(self.live_execs[exec_handle])
        return (self.cudaError_t.cudaSuccess,)

    def cudaGetLastError(self):
        err, self.sticky = self.sticky, self.cudaError_t.cudaSuccess
        return (err,)


class FakeContext:
    """IExecutionContext.execute_async_v3: enqueues work for the current input shapes; an engine with an op
    capture does not allow returns False while the stream is capturing (and breaks the capture)."""

    def __init__(self, rt, capturable=True):
        self.rt, self.capturable = rt, capturable
        self.shapes: tuple = ()
        self.plain_runs: list[tuple] = []

    def execute_async_v3(self, stream):
        assert stream == STREAM
        if self.rt.capturing:
            if not self.capturable:
                self.rt.sticky = self.rt.cudaError_t.cudaErrorStreamCaptureInvalidated
                return False
            self.rt.captured.append(self.shapes)
            return True
        if self.rt.sticky:  # a sticky error left behind makes every later call fail
            return False
        self.plain_runs.append(self.shapes)
        return True


def _run(enqueue, context, batches):
    for batch in batches:
        context.shapes = (("x", (batch, 3)),)  # what set_input_shape did in bind()
        enqueue(context.shapes)


def test_an_engine_that_cannot_be_captured_falls_back_to_plain_enqueue():
    rt = FakeRuntime()
    context = FakeContext(rt, capturable=False)
    enqueue = Enqueue(context, STREAM, use_cuda_graph=True, rt=rt)
    _run(enqueue, context, [8, 8, 4])
    assert not enqueue.use_cuda_graph and enqueue.graph is None
    assert context.plain_runs == [(("x", (8, 3)),), (("x", (8, 3)),), (("x", (4, 3)),)]  # every run ran once
    assert not rt.capturing and not rt.sticky  # capture ended, error cleared
    assert not rt.live_graphs and not rt.live_execs and not rt.launched


def test_an_invalidated_capture_falls_back_too():
    rt = FakeRuntime(invalidate_capture=True)
    context = FakeContext(rt)
    enqueue = Enqueue(context, STREAM, use_cuda_graph=True, rt=rt)
    _run(enqueue, context, [2, 2])
    assert not enqueue.use_cuda_graph and len(context.plain_runs) == 2
    assert not rt.capturing and not rt.sticky and not rt.live_graphs and not rt.live_execs


def test_graphs_are_replayed_only_for_the_shapes_they_were_captured_with():
    rt = FakeRuntime()
    context = FakeContext(rt)
    enqueue = Enqueue(context, STREAM, use_cuda_graph=True, rt=rt)
    _run(enqueue, context, [8, 8, 4, 8, 8])  # TrtModel.run's chunks of a 20-row batch, then more
    assert enqueue.use_cuda_graph
    eight = (("x", (8, 3)),)
    assert rt.launched == [(eight,), (eight,)]  # two replays, each of a graph holding one 8-row enqueue
    assert [s[0][1][0] for s in context.plain_runs] == [8, 4, 8]  # a plain run at each change of shape
    assert len(rt.live_execs) == 1 and not rt.live_graphs  # the 4-row graph was destroyed when shapes changed
    enqueue.drop_graph()
    assert not rt.live_execs


def test_a_failing_plain_enqueue_is_a_model_error():
    rt = FakeRuntime()
    context = FakeContext(rt)
    rt.sticky = rt.cudaError_t.cudaErrorStreamCaptureInvalidated
    with pytest.raises(ModelError, match="execute_async_v3 failed"):
        Enqueue(context, STREAM, rt=rt)(())


def test_capture_ends_and_reraises_when_the_enqueue_raises():
    rt = FakeRuntime()

    def boom():
        raise RuntimeError("binding error")

    with pytest.raises(RuntimeError, match="binding error"):
        capture_graph(STREAM, boom, rt)
    assert not rt.capturing and not rt.live_graphs
