"""Is there a TensorRT + GPU here, and which device is it (name, compute capability, SM count, memory, board,
L4T release)?

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


def _first_line(path: Path) -> str | None:
    try:
        lines = path.read_text(errors="replace").splitlines()[:1]
    except OSError:
        return None
    return lines[0] if lines else None


def jetpack(root: Path = Path("/")) -> str | None:
    """L4T release line on a Jetson (`R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, ...`), else None.
    It names the release, not the board: every Orin module on R36 reads `BOARD: generic`."""
    first = _first_line(root / "etc/nv_tegra_release")
    return first.strip("# \n") if first else None


# Where the board's name can be read: the device tree (hosts), and the SoC bus, which stays visible in
# containers where Docker masks /sys/firmware (and with it /proc/device-tree).
BOARD_MODEL_FILES = ("proc/device-tree/model", "sys/firmware/devicetree/base/model", "sys/devices/soc0/machine")


def board_model(root: Path = Path("/")) -> str | None:
    """The board's model string, e.g. `NVIDIA Jetson AGX Orin Developer Kit` (device-tree strings end in NUL)."""
    for rel in BOARD_MODEL_FILES:
        first = _first_line(root / rel)
        if first and first.strip("\x00 \n"):
            return first.strip("\x00 \n")
    return None


def _cuda_version(value: int | None) -> str | None:
    return None if value is None else f"{value // 1000}.{(value % 1000) // 10}"


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine and a timing cache are tied to, and the CUDA software this process runs on.

    name + compute capability do not tell Jetson modules apart (every Orin is "Orin", 8.7), so the SM count,
    total memory and board model are part of the device too. `cuda_runtime` is kept for manifests that carry
    it: it is the runtime cuda-python links statically (`cuda_python_runtime`), not the system's."""

    name: str  # e.g. "NVIDIA H100 80GB HBM3", "Orin"
    compute_capability: str  # e.g. "9.0", "8.7"
    trt_version: str  # e.g. "10.3.0"
    jetpack: str | None = None
    cuda_runtime: str | None = None  # same as cuda_python_runtime (older key)
    sm_count: int | None = None  # cudaDeviceProp.multiProcessorCount
    total_memory_bytes: int | None = None  # cudaDeviceProp.totalGlobalMem (shared with the CPU on a Jetson)
    board: str | None = None  # device-tree model, e.g. "NVIDIA Jetson Orin Nano Developer Kit"
    cuda_driver: str | None = None  # newest CUDA version the installed driver supports (cudaDriverGetVersion)
    cuda_python_runtime: str | None = None  # CUDA runtime built into cuda-python (cudaRuntimeGetVersion)
    cuda_python: str | None = None  # the cuda-python package version

    def to_dict(self) -> dict[str, str | int | None]:
        return asdict(self)


def describe_device(prop, *, trt_version: str, runtime_version: int | None = None,
                    driver_version: int | None = None, cuda_python: str | None = None,
                    root: Path = Path("/")) -> DeviceInfo:
    """DeviceInfo from a cudaDeviceProp (name, major, minor, multiProcessorCount, totalGlobalMem), the version
    numbers cuda-python reports (12060 -> "12.6") and the board's files under `root`."""
    raw = prop.name
    name = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    runtime = _cuda_version(runtime_version)
    sm = getattr(prop, "multiProcessorCount", None)
    memory = getattr(prop, "totalGlobalMem", None)
    return DeviceInfo(name=name.strip("\x00 "), compute_capability=f"{prop.major}.{prop.minor}",
                      trt_version=str(trt_version), jetpack=jetpack(root), cuda_runtime=runtime,
                      sm_count=int(sm) if sm is not None else None,
                      total_memory_bytes=int(memory) if memory is not None else None, board=board_model(root),
                      cuda_driver=_cuda_version(driver_version), cuda_python_runtime=runtime, cuda_python=cuda_python)


@functools.cache
def device_info(device: int = 0) -> DeviceInfo:
    """The GPU this process builds for, from the CUDA runtime (cuda-python) and tensorrt's version."""
    import importlib.metadata

    trt = require_tensorrt()
    from edgetl.trt.cudart import check, cudart

    rt = cudart()
    count = check(rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if count < 1:
        raise BackendUnavailableError("the CUDA runtime sees no GPU", hint=GPU_HINT)
    prop = check(rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    try:
        cuda_python: str | None = importlib.metadata.version("cuda-python")
    except importlib.metadata.PackageNotFoundError:
        cuda_python = None
    return describe_device(prop, trt_version=str(trt.__version__),
                           runtime_version=check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"),
                           driver_version=check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion"),
                           cuda_python=cuda_python)
