"""The engine for a bundle's model on this device: the bundle's own when it was built on the same GPU and
TensorRT version, else one built here from the bundle's ONNX (and cached; the bundle itself stays read-only)."""

from __future__ import annotations

import logging
from pathlib import Path

from edgetl.runtime.bundle import Bundle, BundleModel
from edgetl.trt.cache import BOARD_KEYS

log = logging.getLogger(__name__)


def same_board(entry: dict, device: dict) -> bool:
    """Whether a bundle's engine entry was built on this board, beyond the GPU name and compute capability
    (every Orin module reads "Orin", 8.7). An entry that recorded no board facts matches only off a Jetson,
    where the GPU name tells devices apart."""
    recorded = [k for k in (*BOARD_KEYS, "jetpack") if entry.get(k) is not None]
    if not recorded:
        return device.get("jetpack") is None
    return all(entry.get(k) == device.get(k) for k in recorded)


def matching_engine(bundle: Bundle, model: BundleModel, device: dict) -> Path | None:
    for e in bundle.engines:
        if (e.get("onnx") == model.name and e.get("trt_version") == device["trt_version"]
                and e.get("device") == device["name"] and e.get("compute_capability") == device["compute_capability"]
                and same_board(e, device)):
            return bundle.path(e["file"])
    return None


def engine_for_bundle(bundle: Bundle, model: BundleModel, cache_dir: Path | None = None) -> Path:
    from edgetl.trt.builder import BuildOptions, build_engine
    from edgetl.trt.cache import cache_root
    from edgetl.trt.device import device_info

    dev = device_info().to_dict()
    found = matching_engine(bundle, model, dev)
    if found is not None:
        log.info("using the bundle's engine %s (built for %s, TensorRT %s)", found.name, dev["name"], dev["trt_version"])
        return found
    if bundle.engines:
        log.info("the bundle's engines were built for %s; building one for %s (TensorRT %s)",
                 ", ".join(sorted({f"{e.get('device')} / TensorRT {e.get('trt_version')}" for e in bundle.engines})),
                 dev["name"], dev["trt_version"])
    pre = bundle.manifest.get("preprocessing") or {}
    sha = (bundle.manifest.get("files") or {}).get(model.file, {}).get("sha256", "unknown")
    out = cache_root(cache_dir) / "bundles" / f"{model.name}-{sha[:16]}.plan"
    result = build_engine(bundle.path(model.file), out, BuildOptions(cache_dir=cache_dir), inputs=model.inputs,
                          task=bundle.task, max_length=pre.get("max_length"))
    return result.engine_path
