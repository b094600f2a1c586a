"""The environment every measurement records: CPU and its ISA flags, OS, Python and library versions.
Read from /proc and package metadata, without importing the heavy libraries."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from edgetl.runtime.files import stable_hash

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
    out.update(jetson_power_mode())
    return out


def jetson_power_mode() -> dict[str, Any]:
    """Power mode by *name* (`nvpmodel -q`; ids differ across JetPack versions), and whether clocks are pinned."""
    import shutil
    import subprocess

    out: dict[str, Any] = {}
    if shutil.which("nvpmodel"):
        try:
            text = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
            for line in text.splitlines():
                if "Power Mode" in line:
                    out["power_mode"] = line.split(":", 1)[1].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    if shutil.which("jetson_clocks"):
        try:
            text = subprocess.run(["jetson_clocks", "--show"], capture_output=True, text=True, timeout=5).stdout
            out["jetson_clocks_show"] = [ln.strip() for ln in text.splitlines() if ln.strip()][:12]
        except (OSError, subprocess.SubprocessError):
            pass
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


def machine_fingerprint() -> str:
    """The device alone (CPU, ISA flags, OS, Jetson release and power mode, runtime versions), without the
    per-measurement settings (threads, backend) that `device_fingerprint` adds. History rows are compared
    only within one machine fingerprint."""
    env = environment()
    libs = env["libraries"]
    key = {
        "cpu": env["cpu"], "flags": env["cpu_flags"], "machine": env["machine"], "os": env["os"],
        "cpu_count": env["cpu_count"], "jetson": {k: v for k, v in env.get("jetson", {}).items() if k != "jetson_clocks_show"},
        "runtimes": {k: libs.get(k) for k in ("onnxruntime", "onnxruntime-gpu", "torch", "tensorrt")},
    }
    return stable_hash(key)[:16]
