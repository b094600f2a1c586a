"""ONNX Runtime sessions: the one place that decides threads, providers and graph optimisation. In the
runtime because an app's `Predictor` makes its sessions here too; the benchmark backends
(`edgetl.backends.onnxruntime`) and the pipeline use the same function."""

from __future__ import annotations

from pathlib import Path

from edgetl.errors import BackendUnavailableError

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
HINTS = {
    "ort-cpu": "pip install onnxruntime",
    "ort-cuda": "pip install 'edgetl[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA GPU, CUDA 12 and cuDNN 9",
    "ort-trt": "pip install 'edgetl[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA GPU, plus TensorRT's libraries "
               "(pip install tensorrt, or JetPack on a Jetson)",
}


def check_provider(backend: str) -> None:
    import onnxruntime as ort

    providers = PROVIDERS[backend]
    available = ort.get_available_providers()
    if providers[0] not in available:
        raise BackendUnavailableError(
            f"{backend} needs ONNX Runtime's {providers[0]}, which this install lacks (has {', '.join(available)})",
            hint=HINTS[backend],
        )


def make_session(path: str | Path | bytes, threads: int | None = None, backend: str = "ort-cpu"):
    """A latency-friendly session: fixed intra-op threads, sequential execution, all graph optimisations.

    path: an ONNX file, or its bytes (a bundle hands out bytes it has just hashed, so what runs is what was checked).
    """
    import onnxruntime as ort

    check_provider(backend)
    providers = PROVIDERS[backend]
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(model, sess_options=so, providers=providers)
    where = "the model bytes" if isinstance(path, bytes) else path
    if session.get_providers()[0] != providers[0]:
        # ORT falls back to the CPU silently when a GPU provider's libraries fail to load
        raise BackendUnavailableError(
            f"{backend}: ONNX Runtime could not start {providers[0]} for {where} (it fell back to "
            f"{session.get_providers()[0]}); its CUDA/cuDNN/TensorRT libraries are missing or do not match",
            hint=HINTS[backend],
        )
    return session
