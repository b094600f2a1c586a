"""Where TensorRT's timing caches and built engines are kept, and the keys that decide reuse (plain logic).

- Timing cache: one file per (GPU name, compute capability, TensorRT version, board: SM count, memory,
  board model). It is loaded with the device check on (`set_timing_cache(cache, ignore_mismatch=False)`), so
  a cache from another GPU is refused rather than silently trusted, and saved after every build.
- Engine cache: an engine is reused only when everything that shapes it is the same: the ONNX file's sha256,
  TensorRT version, device (name, compute capability, L4T release, SM count, memory, board model), builder
  flags (dialect, precision flags, workspace, optimisation level) and the optimisation profile's shapes.
  Name and compute capability alone do not tell an AGX Orin from an Orin Nano ("Orin", 8.7 on both), and
  TensorRT warns against running an engine on another board than it was built on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

KEY_VERSION = 2  # 2: the board (SM count, memory, model) is part of the device
DEVICE_KEYS = ("name", "compute_capability", "jetpack", "sm_count", "total_memory_bytes", "board")
BOARD_KEYS = ("sm_count", "total_memory_bytes", "board")


def cache_root(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    base = os.environ.get("EDGETL_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "edgetl") / "trt"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower() or "unknown"


def board_key(device: dict[str, Any]) -> str | None:
    """A short digest of what tells boards with the same GPU name apart (SM count, memory, board model), or
    None when none of them is known."""
    parts = {k: device.get(k) for k in BOARD_KEYS}
    if all(v is None for v in parts.values()):
        return None
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def timing_cache_path(root: Path, device_name: str, compute_capability: str, trt_version: str,
                      board: str | None = None) -> Path:
    """`board`: `board_key(device)`, so two boards that share the GPU name keep separate caches."""
    tail = f"-{board}" if board else ""
    name = f"{slug(device_name)}-sm{compute_capability.replace('.', '')}-trt{slug(trt_version)}{tail}.cache"
    return root / "timing" / name


def engine_key(*, onnx_sha256: str, trt_version: str, device: dict[str, Any], flags: dict[str, Any],
               shapes: dict[str, Any]) -> str:
    """sha256 over everything that decides the engine's content. `device`: DEVICE_KEYS (name,
    compute_capability, jetpack, sm_count, total_memory_bytes, board);
    `flags`: dialect, builder_flags, workspace_bytes, optimization_level; `shapes`: the profile per input."""
    body = {
        "v": KEY_VERSION,
        "onnx_sha256": onnx_sha256,
        "trt_version": str(trt_version),
        "device": {k: device.get(k) for k in DEVICE_KEYS},
        "flags": {k: (sorted(v) if isinstance(v, (list, tuple)) else v) for k, v in sorted(flags.items())},
        "shapes": shapes,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class EngineCache:
    """root/engines/<key[:2]>/<key>.plan with <key>.json (what it was built from and the inspector summary)."""

    def __init__(self, root: Path):
        self.root = root

    def paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / "engines" / key[:2]
        return folder / f"{key}.plan", folder / f"{key}.json"

    def get(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        plan, meta_file = self.paths(key)
        if not (plan.is_file() and meta_file.is_file()):
            return None
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            return None
        if meta.get("key") != key or meta.get("engine_sha256") != hashlib.sha256(plan.read_bytes()).hexdigest():
            return None  # damaged or half-written: rebuild
        return plan, meta

    def put(self, key: str, engine: bytes, meta: dict[str, Any]) -> Path:
        plan, meta_file = self.paths(key)
        _atomic_write(plan, engine)
        full = {**meta, "key": key, "engine_sha256": hashlib.sha256(engine).hexdigest()}
        _atomic_write(meta_file, json.dumps(full, indent=2, sort_keys=True, default=str).encode())
        return plan


def save_timing_cache(path: Path, serialized: bytes) -> None:
    _atomic_write(path, bytes(serialized))
