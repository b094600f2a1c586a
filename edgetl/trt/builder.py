"""Build a TensorRT engine from an edgetl ONNX file, on the device that will run it.

    parse (every parser error reported) -> dialect by TensorRT version (weak + INT8/FP16 flags on 10.x,
    strongly typed on >= 10.12 / 11) -> one optimisation profile from the shapes -> timing cache for this
    GPU/SM/TensorRT (device check on) -> build_serialized_network -> save timing cache -> inspect layer
    precisions -> engine cache keyed by (onnx sha256, TensorRT, device, flags, shapes)

Torch-free: an app can build the engine for its own device from a bundle (`edgetl.runtime.bundle_engine`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import ExportError, ModelError, StageError
from edgetl.trt.cache import (
    EngineCache,
    board_key,
    cache_root,
    engine_key,
    save_timing_cache,
    timing_cache_path,
)
from edgetl.trt.dialect import Dialect, choose_dialect, has_qdq_nodes, network_flags
from edgetl.trt.shapes import Range, describe, resolve_profile

log = logging.getLogger(__name__)


@dataclass
class BuildOptions:
    workspace_bytes: int = 1 << 30
    shapes: dict[str, Range] = field(default_factory=dict)  # user ranges per axis name (batch, sequence, ...)
    dialect: str = "auto"  # auto | weak | strong
    fp16: bool = True  # weakly typed builds only: allow FP16 kernels for the float layers
    optimization_level: int | None = None  # builder_optimization_level (0-5; TensorRT default 3)
    cache_dir: Path | None = None  # timing + engine caches (default ~/.cache/edgetl/trt or $EDGETL_CACHE/trt)
    use_engine_cache: bool = True


@dataclass
class BuildResult:
    engine_path: Path
    key: str
    cached: bool
    dialect: Dialect
    device: dict[str, Any]
    profile: dict[str, Any]
    workspace_bytes: int
    optimization_level: int | None
    layers: dict[str, Any]
    build_seconds: float
    timing_cache: str | None

    def info(self) -> dict[str, Any]:
        """Facts for the artifact / bundle manifest."""
        return {
            "trt_version": self.device.get("trt_version"), "device": self.device.get("name"),
            "compute_capability": self.device.get("compute_capability"), "jetpack": self.device.get("jetpack"),
            "cuda_runtime": self.device.get("cuda_runtime"), "dialect": self.dialect.name,
            **{k: self.device.get(k) for k in ("sm_count", "total_memory_bytes", "board", "cuda_driver",
                                               "cuda_python_runtime", "cuda_python")},
            "dialect_reason": self.dialect.reason, "builder_flags": list(self.dialect.builder_flags),
            "profile": self.profile, "cache_key": self.key, "workspace_bytes": self.workspace_bytes,
            "optimization_level": self.optimization_level, "layers": self.layers,
            "build_seconds": round(self.build_seconds, 3), "engine_cache_hit": self.cached,
            "timing_cache": self.timing_cache,
        }


def onnx_description(path: Path) -> tuple[list[dict[str, Any]] | None, str | None, int | None]:
    """(inputs [{"name", "shape"}], task, max_length) from the model.json sidecar or the ONNX graph itself."""
    sidecar = path.parent / "model.json"
    task = max_length = inputs = None
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            task = meta.get("task")
            max_length = (meta.get("preprocessing") or {}).get("max_length")
            inputs = ((meta.get("info") or {}).get("io") or {}).get("inputs")
        except ValueError:
            pass
    if inputs is None:
        try:
            import onnx
        except ImportError:
            return None, task, max_length
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # noqa: BLE001 - a file onnx cannot read is TensorRT's parser's to report
            log.debug("onnx could not read %s (%s): no axis names from the graph", path, exc)
            return None, task, max_length
        inputs = [{"name": v.name, "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]}
                  for v in graph.input]
    return inputs, task, max_length


def parser_error_text(err) -> str:
    """One parser error with everything the parser knows about it (node, op, name, code, source location)."""

    def get(name: str):
        fn = getattr(err, name, None)
        try:
            return fn() if callable(fn) else None
        except Exception:  # noqa: BLE001 - a field the binding cannot produce is left out
            return None

    code, node, op, name, desc = get("code"), get("node"), get("node_operator"), get("node_name"), get("desc")
    where = f"node {node}" if node is not None and node >= 0 else "graph"
    if op or name:
        where += f" ({op or '?'} {name!r})" if name else f" ({op})"
    loc = f" [{get('file')}:{get('line')} {get('func') or ''}]".rstrip() if get("file") else ""
    code_name = getattr(code, "name", code)
    stack = get("local_function_stack")
    text = f"{where}: {code_name}: {desc or str(err)}{loc}"
    return text + (f" (in local functions {' > '.join(stack)})" if stack else "")


def _make_logger(trt):
    class Logger(trt.ILogger):
        """TensorRT's messages into Python logging; errors kept for the exception message."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.INFO:
                log.debug("TensorRT: %s", msg)

    return Logger()


def _network_inputs(network) -> list[dict[str, Any]]:
    return [{"name": network.get_input(i).name, "shape": [int(d) for d in network.get_input(i).shape]}
            for i in range(network.num_inputs)]


def _merge_names(onnx_inputs: list[dict[str, Any]] | None, trt_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TensorRT's view of the inputs (the truth) with the ONNX axis names (batch, sequence) where it has -1."""
    named = {s["name"]: s["shape"] for s in onnx_inputs or []}
    out = []
    for spec in trt_inputs:
        names = named.get(spec["name"]) or []
        shape = [names[i] if d < 0 and i < len(names) and isinstance(names[i], str) and names[i] else d
                 for i, d in enumerate(spec["shape"])]
        out.append({"name": spec["name"], "shape": shape})
    return out


def attach_timing_cache(config, blob: bytes, path: Path) -> bool:
    """Load the saved timing cache into the builder config, or start a fresh one; False when the build has to
    run without any (it still builds, only slower).

    `create_timing_cache` returns None for bytes it cannot read (a truncated or foreign file), as NVIDIA's
    samples check; `set_timing_cache(cache, False)` keeps the device check on, so a cache from another GPU or
    TensorRT is refused rather than trusted."""
    if blob:
        cache = config.create_timing_cache(blob)
        if cache is None:
            log.warning("timing cache %s could not be read (%d bytes); starting a fresh one", path, len(blob))
        elif config.set_timing_cache(cache, False):
            log.info("timing cache: %s (%d bytes)", path, len(blob))
            return True
        else:
            log.warning("timing cache %s was made on another device or TensorRT; starting a fresh one", path)
    fresh = config.create_timing_cache(b"")
    if fresh is not None and config.set_timing_cache(fresh, False):
        return True
    log.warning("TensorRT could not create an empty timing cache; building without one")
    return False


def build_engine(onnx_path: str | Path, out_path: str | Path, options: BuildOptions | None = None, *,
                 inputs: list[dict[str, Any]] | None = None, task: str | None = None,
                 max_length: int | None = None) -> BuildResult:
    """Build (or take from the engine cache) the engine for `onnx_path` on this device; write it to `out_path`.

    inputs/task/max_length: the model's inputs with axis names and what sets default shapes; read from the
    model.json sidecar or the ONNX graph when not given (a bundle passes its manifest's)."""
    from edgetl.trt.device import device_info, require_tensorrt
    from edgetl.trt.inspect import engine_information, summarize_layers

    opts = options or BuildOptions()
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path} does not exist", hint="pass an ONNX file written by `edgetl compress` (export stage)")
    trt = require_tensorrt()
    data = onnx_path.read_bytes()
    onnx_sha = hashlib.sha256(data).hexdigest()
    device = device_info()
    dev = device.to_dict()
    dialect = choose_dialect(str(trt.__version__), has_qdq=has_qdq_nodes(data), choice=opts.dialect,  # type: ignore[arg-type]
                             fp16=opts.fp16)
    log.info("TensorRT %s on %s (SM %s): %s", dev["trt_version"], dev["name"], dev["compute_capability"], dialect.reason)

    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, dialect))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT {dev['trt_version']} could not parse {onnx_path} ({len(errors)} error(s))",
                          problems=errors or logger.errors,
                          hint="each line names the ONNX node; unsupported ops need a different export (opset 17) "
                               "or a plugin; a Q/DQ error usually means a non-zero zero point (use layout: tensorrt)")
    # Only after TensorRT's parser accepted the file: its error list says more than onnx's DecodeError would.
    onnx_inputs = inputs
    if inputs is None:
        onnx_inputs, found_task, found_length = onnx_description(onnx_path)
        task, max_length = task or found_task, max_length or found_length
    profile_inputs = _merge_names(onnx_inputs, _network_inputs(network))
    profile = resolve_profile(profile_inputs, opts.shapes, task=task, max_length=max_length)
    shapes = describe(profile)
    flags = {"dialect": dialect.name, "builder_flags": list(dialect.builder_flags),
             "workspace_bytes": int(opts.workspace_bytes), "optimization_level": opts.optimization_level}
    key = engine_key(onnx_sha256=onnx_sha, trt_version=device.trt_version, device=dev, flags=flags, shapes=shapes)
    root = cache_root(opts.cache_dir)
    cache = EngineCache(root)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    hit = cache.get(key) if opts.use_engine_cache else None
    if hit is not None:
        plan, meta = hit
        shutil.copyfile(plan, out_path)
        log.info("engine cache hit %s for %s", key[:16], onnx_path.name)
        return BuildResult(out_path, key, True, dialect, dev, shapes, int(opts.workspace_bytes), opts.optimization_level,
                           meta.get("layers") or {}, 0.0, meta.get("timing_cache"))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_bytes))
    for flag in dialect.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector needs it for layer precisions
    if opts.optimization_level is not None:
        config.builder_optimization_level = int(opts.optimization_level)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)

    tc_path = timing_cache_path(root, device.name, device.compute_capability, device.trt_version, board_key(dev))
    attach_timing_cache(config, tc_path.read_bytes() if tc_path.is_file() else b"", tc_path)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise StageError(f"TensorRT could not build an engine from {onnx_path}",
                         problems=logger.errors or ["(TensorRT logged no error; rerun with -v for its log)"],
                         hint="a larger --workspace, other --shapes, or `dialect: weak` on TensorRT 10.x may help")
    timing = config.get_timing_cache()
    if timing is not None:
        save_timing_cache(tc_path, bytes(timing.serialize()))
    engine_bytes = bytes(serialized)
    out_path.write_bytes(engine_bytes)

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context()
    for name, (_, opt, _) in profile.items():
        context.set_input_shape(name, opt)
    layers = summarize_layers(engine_information(engine, context))
    log.info("built %s in %.1f s: %d layers, %d of %d compute layers in INT8", out_path.name, seconds,
             layers.get("layers", 0), layers.get("int8_layers", 0), layers.get("compute_layers", 0))
    if has_qdq_nodes(data) and layers.get("compute_layers") and not layers.get("int8_layers"):
        log.warning("the ONNX has Q/DQ nodes but no layer runs INT8: check the Q/DQ placement (check-qdq)")
    result = BuildResult(out_path, key, False, dialect, dev, shapes, int(opts.workspace_bytes), opts.optimization_level,
                         layers, seconds, str(tc_path))
    if opts.use_engine_cache:
        cache.put(key, engine_bytes, {"onnx": str(onnx_path), "onnx_sha256": onnx_sha, **result.info()})
    return result


def parse_workspace(text: str | int) -> int:
    """`1024` (MiB), `512M`, `2G`, `1.5GiB` -> bytes, for --workspace."""
    import re

    from edgetl.errors import RecipeError

    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), "m"
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), flags=re.IGNORECASE)
        if not m:
            raise RecipeError(f"--workspace {text!r} is not a size", hint="e.g. --workspace 1024 (MiB), 512M or 2G")
        value, unit = float(m.group(1)), (m.group(2) or "m").lower()
    size = int(value * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit])
    if size < (16 << 20):
        raise RecipeError(f"--workspace {text!r} is {size} bytes; TensorRT needs at least 16 MiB to find tactics",
                          hint="e.g. --workspace 1G")
    return size
