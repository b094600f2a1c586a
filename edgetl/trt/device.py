"""Is there a TensorRT + GPU here, and which device is it (name, compute capability, JetPack)?

`static_problem()` is what `edgetl validate` calls: it looks for the tensorrt module and an NVIDIA device node
without importing either, so a recipe that needs an engine fails in a second, before any training.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgetl.errors import BackendUnavailableError

log = logging.getLogger(__name__)

TRT_HINT = ("desktop/server: pip install 'edgetl[trt]' (TensorRT 10/11 wheels + cuda-python) with an NVIDIA "
            "driver; Jetson: use JetPack 6's TensorRT (python3-libnvinfer, see Dockerfile.jetson) and "
            "pip install 'edgetl[jetson]'")
GPU_HINT = ("TensorRT builds and runs engines on an NVIDIA GPU: run this on the target device (a Jetson or a "
            "machine with an NVIDIA driver, /dev/nvidia0), or in Docker with `--runtime nvidia` / `--gpus all`")
# Device nodes: desktop driver, Jetson (nvgpu / nvhost), and the container runtime's view of them.
GPU_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl")


def has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def has_gpu_node() -> bool:
    forced = os.environ.get("EDGETL_GPU_NODES")  # colon-separated override, for containers with unusual layouts
    nodes = forced.split(":") if forced else GPU_NODES
    return any(Path(n).exists() for n in nodes)


def static_problem() -> tuple[str, str] | None:
    """(what is missing, how to fix it) when TensorRT cannot run here, else None. Imports nothing heavy."""
    if not has_tensorrt():
        return "TensorRT is not installed (no `tensorrt` module)", TRT_HINT
    if importlib.util.find_spec("cuda") is None:
        return ("cuda-python is not installed (edgetl moves engine buffers with it)",
                "pip install 'edgetl[trt]' (or 'edgetl[jetson]' on a Jetson)")
    if not has_gpu_node():
        return f"no NVIDIA GPU found (none of {', '.join(GPU_NODES)} exists)", GPU_HINT
    return None


def require_tensorrt():
    """Import tensorrt or raise BackendUnavailableError with the install hint."""
    problem = static_problem()
    if problem:
        raise BackendUnavailableError(f"TensorRT cannot run here: {problem[0]}", hint=problem[1])
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) must read as unavailable
        raise BackendUnavailableError(f"`import tensorrt` failed: {type(exc).__name__}: {exc}", hint=TRT_HINT) from exc
    return trt


def jetpack() -> str | None:
    """L4T release string on a Jetson (`R36 (release), REVISION: 4.0`), else None."""
    rel = Path("/etc/nv_tegra_release")
    if rel.is_file():
        first = rel.read_text(errors="replace").splitlines()[:1]
        return first[0].strip("# \n") if first else None
    return None


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine and a timing cache are tied to."""

    name: str  # e.g. "NVIDIA H100 80GB HBM3", "Orin"
    compute_capability: str  # e.g. "9.0", "8.7"
    trt_version: str  # e.g. "10.3.0"
    jetpack: str | None = None
    cuda_runtime: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


@functools.cache
def device_info(device: int = 0) -> DeviceInfo:
    """The GPU this process builds for, from the CUDA runtime (cuda-python) and tensorrt's version."""
    trt = require_tensorrt()
    from edgetl.trt.cudart import check, cudart

    rt = cudart()
    count = check(rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if count < 1:
        raise BackendUnavailableError("the CUDA runtime sees no GPU", hint=GPU_HINT)
    prop = check(rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    version = check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
    return DeviceInfo(name=name.strip("\x00 "), compute_capability=f"{prop.major}.{prop.minor}",
                      trt_version=str(trt.__version__), jetpack=jetpack(),
                      cuda_runtime=f"{version // 1000}.{(version % 1000) // 10}")
