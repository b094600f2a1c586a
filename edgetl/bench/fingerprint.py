"""The environment every measurement records: CPU and its ISA flags, OS, Python and library versions.
Read from /proc and package metadata, without importing the heavy libraries."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from edgetl.pipeline.artifacts import stable_hash

LIBRARIES = ("edgetl", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "transformers", "numpy", "torch-pruning",
             "peft", "torchao", "tensorrt", "tokenizers")
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "fma", "asimd",
                     "asimddp", "sve", "i8mm")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags", "Features", "CPU implementer", "CPU part", "Hardware") and key not in info:
            info[key] = value.strip()
    return info


def cpu_flags() -> list[str]:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return sorted(f for f in INTERESTING_FLAGS if f in flags)


def has_vnni() -> bool:
    flags = set(cpu_flags())
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def jetson_info() -> dict[str, Any]:
    """L4T release and power mode on a Jetson; empty elsewhere."""
    release = Path("/etc/nv_tegra_release")
    if not release.exists():
        return {}
    out: dict[str, Any] = {"l4t": release.read_text().splitlines()[0].strip()}
    model = Path("/proc/device-tree/model")
    if model.exists():
        out["board"] = model.read_text().strip("\x00\n ")
    return out


@functools.cache
def environment() -> dict[str, Any]:
    info = _cpuinfo()
    env = {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": library_versions(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }
    jetson = jetson_info()
    if jetson:
        env["jetson"] = jetson
    return env


def device_fingerprint(threads: int | None = None, backend: str = "ort-cpu") -> str:
    """A short id of what decides latency: the CPU, its flags, the OS, the runtime version, threads."""
    env = environment()
    key = {
        "cpu": env["cpu"], "flags": env["cpu_flags"], "machine": env["machine"], "os": env["os"],
        "runtime": env["libraries"].get("onnxruntime") or env["libraries"].get("onnxruntime-gpu"),
        "threads": threads, "backend": backend,
    }
    return stable_hash(key)[:16]
