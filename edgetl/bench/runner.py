"""The one benchmark implementation behind `edgetl bench`, the pipeline's `benchmark` stage and the nightly
suite: targets x backends, accuracy of each artifact on an eval split, single-stream latency (interleaved,
warm-up until stable, raw timings kept), an offline throughput sweep over batch sizes, memory, size /
params / MACs, Jetson power, and the fingerprint of the environment with every result.

A backend that cannot run here is never skipped silently: its row says `status: unavailable` with the
reason and how to get it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import BackendUnavailableError, BenchmarkError, DataError, EdgetlError

log = logging.getLogger(__name__)
RESULT_VERSION = 1
FORMAT_BACKEND = {"onnx": "ort-cpu", "pytorch": "torch", "engine": "tensorrt"}
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass
class Target:
    """One model file to measure."""

    name: str
    path: Path
    format: str  # "onnx" | "pytorch" | "engine"
    sha256: str = ""
    size_bytes: int = 0
    precision: str | None = None
    meta: Any = None  # OnnxMeta (onnx) or the saved model's preprocessing facts; None for a bare file
    threads: int | None = None  # overrides BenchOptions.threads for this target (the suite's reference model)

    @property
    def labels(self) -> list[str] | None:
        return list(self.meta.labels) if self.meta is not None else None


@dataclass
class BenchOptions:
    backends: list[str] | None = None  # None: the natural backend of each target's format
    batches: list[int] = field(default_factory=lambda: [1])  # first = single-stream latency batch
    threads: int | None = 2
    iterations: int = 200
    min_seconds: float = 0.0
    warmup_seconds: float = 0.2
    sweep_iterations: int | None = None  # per batch > first; default max(10, ceil(iterations / batch))
    chunk: int = 20
    seed: int = 0
    eval_batch_size: int = 64
    accuracy: bool = True
    model_stats: bool = True
    power: bool = True  # sample tegrastats where it exists (Jetson)
    power_seconds: float = 3.0
    cpu_time: bool = False  # also record process CPU time per iteration (robust to other work on the machine)
    shapes: dict[str, list[int]] = field(default_factory=dict)  # non-batch dims for inputs a bare ONNX leaves open

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- targets


def target_from_path(path: str | Path, name: str | None = None) -> list[Target]:
    """An .onnx file, an engine file, a saved edgetl model folder, a folder holding model.onnx, or a run
    folder (every ONNX and PyTorch artifact of its manifest)."""
    from edgetl.runtime.files import digest_and_size

    p = Path(path)
    if not p.exists():
        raise BenchmarkError(
            f"model {str(path)!r} does not exist",
            hint="pass an .onnx file, a TensorRT engine (.engine/.plan), a saved edgetl model folder or a run folder "
                 "(e.g. runs/quickstart-vision)",
        )
    if p.is_dir() and (p / "manifest.json").exists():
        return targets_from_run(p)
    if p.is_dir() and (p / "model.json").exists() and (p / "model.safetensors").exists():
        sha, size = digest_and_size(p)
        return [Target(name or p.name, p, "pytorch", sha, size, "fp32", _pytorch_meta(p))]
    if p.is_dir() and (p / "model.onnx").exists():
        p = p / "model.onnx"
    if p.is_file() and p.suffix == ".onnx":
        sha, size = digest_and_size(p)
        return [Target(name or _default_name(p), p, "onnx", sha, size, None, _onnx_meta(p))]
    if p.is_file() and p.suffix in ENGINE_SUFFIXES:
        sha, size = digest_and_size(p)
        return [Target(name or p.stem, p, "engine", sha, size)]
    raise BenchmarkError(
        f"{path} is not a model edgetl can benchmark",
        hint="expected an .onnx file, an engine file (.engine/.plan/.trt), a folder with model.json + "
             "model.safetensors (PyTorch), a folder with model.onnx, or a run folder with manifest.json",
    )


def _default_name(p: Path) -> str:
    return p.parent.name if p.name == "model.onnx" else p.stem


def make_names_unique(targets: list[Target]) -> None:
    """Give targets that share a name (every export is `onnx/model.onnx`) the shortest path suffix that tells
    them apart, e.g. `01-export-abc/onnx/model.onnx` vs `02-quantize-def/onnx/model.onnx`: rows, interleaved
    timings and history are keyed by name, so two files under one name would share one set of timings."""
    groups: dict[str, list[Target]] = {}
    for t in targets:
        groups.setdefault(t.name, []).append(t)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        paths = list(dict.fromkeys(os.path.abspath(t.path) for t in group))
        if len(paths) < 2:
            continue
        parts = [Path(p).parts for p in paths]
        for k in range(1, max(len(p) for p in parts) + 1):
            suffix = {p: "/".join(q[-k:]) for p, q in zip(paths, parts, strict=True)}
            if len(set(suffix.values())) == len(paths):
                break
        for t in group:
            derived = name in (_default_name(t.path), t.path.name)
            short = suffix[os.path.abspath(t.path)]
            t.name = short if derived else f"{name} ({short})"
    seen: dict[str, int] = {}
    for t in targets:  # the same file given twice: number the repeats
        seen[t.name] = seen.get(t.name, 0) + 1
        if seen[t.name] > 1:
            t.name = f"{t.name} #{seen[t.name]}"


def _onnx_meta(p: Path):
    from edgetl.runtime.meta import ONNX_META_FORMAT, read_onnx_meta

    mp = p.parent / "model.json"
    if mp.exists():
        import json

        try:
            if json.loads(mp.read_text()).get("format") == ONNX_META_FORMAT:
                return read_onnx_meta(p)
        except ValueError:
            return None
    return None


@dataclass
class _PtMeta:
    labels: list[str]
    preprocessing: Any
    task: str
    folder: Path

    def encoder(self):
        from edgetl.runtime.preprocess import TextEncoder, encode_images

        pre = self.preprocessing
        if pre.kind == "image":
            return lambda raw, **_: encode_images(raw, pre)
        return TextEncoder(self.folder / (pre.tokenizer_file or "tokenizer.json"), pre)


def _pytorch_meta(folder: Path) -> _PtMeta:
    import json

    from edgetl.runtime.preprocess import Preprocessing

    data = json.loads((folder / "model.json").read_text())
    return _PtMeta(list(data["labels"]), Preprocessing.from_dict(data["preprocessing"]), data["task"], folder)


def targets_from_run(run_dir: Path, names: list[str] | None = None) -> list[Target]:
    import json

    manifest = json.loads((run_dir / "manifest.json").read_text())
    arts = [a for a in manifest.get("artifacts", []) if a["format"] in ("onnx", "pytorch", "engine")]
    if names:
        known = [a["name"] for a in arts]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BenchmarkError(f"{run_dir} has no artifact named {unknown}; it has {known}")
        arts = [a for a in arts if a["name"] in names]
    out = []
    for a in arts:
        t = target_from_path(run_dir / a["path"], name=a["name"])[0]
        t.precision = a.get("precision")
        out.append(t)
    if not out:
        raise BenchmarkError(f"{run_dir}/manifest.json lists no ONNX, PyTorch or engine artifacts")
    return out


# ---------------------------------------------------------------- inputs


def real_feed(target: Target, raw_inputs, batch: int) -> dict[str, np.ndarray]:
    """`batch` real examples (repeated if the split is smaller); text padded to max_length, the deployed worst case."""
    idx = [i % len(raw_inputs) for i in range(batch)]
    raw = raw_inputs[idx] if isinstance(raw_inputs, np.ndarray) else [raw_inputs[i] for i in idx]
    from edgetl.runtime.preprocess import latency_feed

    return latency_feed(target.meta.encoder(), raw, target.meta.task)


def synthetic_feed(target: Target, loaded, batch: int, shapes: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs shaped like the model's: from its preprocessing when known, else from the graph."""
    rng = np.random.default_rng(seed)
    if target.meta is not None:
        pre = target.meta.preprocessing
        if pre.kind == "image":
            return {pre.input_names[0]: rng.standard_normal(pre.example_shape(batch)).astype(np.float32)}
        length = int(pre.max_length or 128)
        full = {"input_ids": rng.integers(1000, 2000, (batch, length), dtype=np.int64),
                "attention_mask": np.ones((batch, length), np.int64),
                "token_type_ids": np.zeros((batch, length), np.int64)}
        return {k: full[k] for k in pre.input_names}
    feed = {}
    for spec in loaded.input_spec():
        dims = list(spec["shape"])
        if spec["name"] in shapes:
            dims = [batch] + list(shapes[spec["name"]])
        elif dims and dims[0] is None:
            dims[0] = batch
        if any(d is None for d in dims):
            raise BenchmarkError(
                f"{target.path}: input {spec['name']!r} has dynamic dimensions {spec['shape']} beyond the batch, and "
                "no model.json says what to feed it",
                hint=f"pass --shape {spec['name']}=D1xD2... (the dimensions after the batch, e.g. 3x224x224)",
            )
        dtype = np.dtype(spec["dtype"])
        if np.issubdtype(dtype, np.floating):
            feed[spec["name"]] = rng.standard_normal(dims).astype(dtype)
        elif dtype == np.bool_:
            feed[spec["name"]] = np.ones(dims, dtype=bool)
        else:
            feed[spec["name"]] = rng.integers(0, 2, dims).astype(dtype)
    return feed


# ---------------------------------------------------------------- memory


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


PEAK_RSS_SOURCES = {
    "VmHWM": "VmHWM of /proc/self/status: this process's own high-water mark (reset at exec)",
    "getrusage": "getrusage ru_maxrss (no /proc here): on Linux it also counts what the process used before an exec",
}


def peak_rss() -> tuple[float, str]:
    """(peak resident MB of this process, key of PEAK_RSS_SOURCES). getrusage's maximum survives exec on Linux,
    so a parent that used 3 GB and exec'd the benchmark would be reported; VmHWM starts afresh."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6, "VmHWM"  # kB
    except (OSError, ValueError, IndexError):
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6, "getrusage"


# ---------------------------------------------------------------- the benchmark


@dataclass
class _Variant:
    key: str
    target: Target
    backend: str
    loaded: Any
    result: dict[str, Any]
    feeds: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def backend_status(name: str) -> tuple[Any | None, dict[str, Any] | None]:
    """(backend instance, None) or (None, {status, reason, hint}) for one registered backend name."""
    from edgetl.registry import BACKENDS

    entry = BACKENDS.get(name)  # unknown name -> RecipeError (exit 2) listing the known ones
    missing = entry.missing()
    if missing:
        return None, {"status": "unavailable", "reason": f"needs {', '.join(missing)}, which is not installed",
                      "hint": entry.install_hint()}
    backend = entry.load()()
    try:
        backend.check_available()
    except BackendUnavailableError as exc:
        return None, {"status": "unavailable", "reason": str(exc), "hint": exc.hint or entry.install_hint()}
    return backend, None


def _base_row(t: Target, backend: str, opts: BenchOptions) -> dict[str, Any]:
    from edgetl.bench.fingerprint import device_fingerprint

    return {"model": t.name, "path": str(t.path), "format": t.format, "precision": t.precision, "sha256": t.sha256,
            "size_bytes": t.size_bytes, "backend": backend, "threads": opts.threads, "batch_size": opts.batches[0],
            "fingerprint": device_fingerprint(opts.threads, backend), "status": "ok"}


def run_benchmark(targets: list[Target], opts: BenchOptions, *, eval_split=None, label_names: list[str] | None = None,
                  on_round: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every (target, backend) pair; see the module docstring. `eval_split` (raw inputs + labels) gives
    accuracy and real latency inputs; without it inputs are seeded random tensors of the right shape."""
    from edgetl.bench.fingerprint import environment, machine_fingerprint
    from edgetl.bench.protocol import summarize, time_interleaved

    if not targets:
        raise BenchmarkError("nothing to benchmark: no model given")
    if not opts.batches or any(b < 1 for b in opts.batches):
        raise BenchmarkError(f"batch sizes must be positive integers, got {opts.batches}", hint="e.g. --batch 1,8,32")
    make_names_unique(targets)
    started = dt.datetime.now(dt.timezone.utc)
    load_before = _loadavg()
    rows: list[dict[str, Any]] = []
    variants: list[_Variant] = []
    backends: dict[str, tuple[Any, dict[str, Any] | None]] = {}
    stats_cache: dict[str, dict[str, Any]] = {}
    for t in targets:
        names = list(dict.fromkeys(opts.backends or [FORMAT_BACKEND.get(t.format, "ort-cpu")]))
        for bname in names:
            if bname not in backends:
                backends[bname] = backend_status(bname)
                if backends[bname][1]:
                    log.warning("backend %s: %s (how to get it: %s)", bname, backends[bname][1]["reason"],
                                backends[bname][1]["hint"])
            backend, problem = backends[bname]
            row = _base_row(t, bname, opts)
            if t.threads:
                row["threads"] = t.threads
            rows.append(row)
            if problem:
                row.update(problem)
                continue
            if not backend.accepts(t.format):
                row.update(status="unsupported",
                           reason=f"{bname} runs {'/'.join(backend.formats)} models; {t.name} is {t.format}",
                           hint=f"use --backend {FORMAT_BACKEND.get(t.format, 'ort-cpu')} for {t.format} models")
                continue
            before = rss_mb()
            try:
                loaded = backend.load(t.path, threads=t.threads or opts.threads)
            except BackendUnavailableError as exc:
                row.update(status="unavailable", reason=str(exc), hint=exc.hint)
                continue
            except EdgetlError:
                raise
            except Exception as exc:
                if t.format == "onnx":
                    from edgetl.backends.onnx_file import read_onnx

                    read_onnx(t.path)  # an empty, truncated or garbage file: ModelError naming it (exit 2)
                log.warning("%s could not load %s: %s", bname, t.path, exc)
                row.update(status="error", reason=f"{bname} could not load {t.path}: {type(exc).__name__}: {exc}")
                continue
            row["runtime"] = {**backend.versions(), **loaded.info()}
            v = _Variant(f"{t.name}@{bname}", t, bname, loaded, row)
            try:
                _prepare_variant(v, opts, eval_split, label_names, stats_cache)
            except EdgetlError:
                raise
            except Exception as exc:  # a model the runtime rejects: report it on its row, measure the rest
                log.warning("%s on %s failed: %s", t.name, bname, exc)
                row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
                continue
            row["memory"] = {"rss_before_load_mb": round(before, 1), "rss_after_load_mb": round(rss_mb(), 1),
                             "load_delta_mb": round(rss_mb() - before, 1)}
            variants.append(v)
    if not variants:
        problems = [f"{r['model']} on {r['backend']}: {r['status']}: {r.get('reason')}" for r in rows]
        hints = sorted({r["hint"] for r in rows if r.get("hint")})
        if any(r["status"] == "error" for r in rows):
            raise BenchmarkError("no requested model/backend pair could be measured", problems=problems,
                                 hint="; ".join(hints) or None)
        raise BackendUnavailableError("no requested model/backend pair can run here", problems=problems,
                                      hint="; ".join(hints) or None)

    # single-stream latency: every variant interleaved at the first batch size
    lat_batch = opts.batches[0]
    fns = {v.key: v.loaded.prepare(v.feeds[lat_batch]) for v in variants}
    warm: dict[str, int] = {}
    cpu: dict[str, list[float]] | None = {} if opts.cpu_time else None
    samples = time_interleaved(fns, iterations=opts.iterations, min_seconds=opts.min_seconds, chunk=opts.chunk,
                               warmup_seconds=opts.warmup_seconds, seed=opts.seed, warmup_counts=warm, cpu_samples=cpu,
                               on_round=(lambda r: on_round(f"latency round {r}")) if on_round else None)
    for v in variants:
        raw = samples[v.key]
        stats = summarize(raw)
        v.result.update(latency_ms=stats, raw_ms=[round(x, 4) for x in raw], warmup_iterations=warm.get(v.key),
                        protocol={"iterations": opts.iterations, "min_seconds": opts.min_seconds,
                                  "warmup_seconds": opts.warmup_seconds, "interleaved_with": len(variants) - 1,
                                  "chunk": opts.chunk})
        if cpu is not None:
            v.result["cpu_ms"] = summarize(cpu[v.key])
            v.result["cpu_raw_ms"] = [round(x, 4) for x in cpu[v.key]]
        v.result["throughput"] = [{"batch_size": lat_batch, "latency_ms": stats,
                                   "samples_per_s": lat_batch * 1000.0 / stats["mean"]}]
        device = v.loaded.device_time_ms()
        if device:  # GPU compute time of the same iterations (the last len(raw) calls; the rest were warm-up)
            v.result["device_latency_ms"] = summarize(device[-len(raw):])
            v.result["device_raw_ms"] = [round(x, 4) for x in device[-len(raw):]]
        log.info("%s: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms (CoV %.1f %%, n=%d)%s", v.key, stats["p50"], stats["p90"],
                 stats["p99"], 100 * stats["cov"], stats["n"], "  NOISY" if stats["noisy"] else "")

    # offline throughput sweep: per batch size, variants interleaved
    for b in opts.batches[1:]:
        iters = opts.sweep_iterations or max(10, math.ceil(opts.iterations / b))
        fns = {v.key: v.loaded.prepare(v.feeds[b]) for v in variants}
        samples = time_interleaved(fns, iterations=iters, chunk=max(1, min(opts.chunk, iters)),
                                   warmup_seconds=opts.warmup_seconds, seed=opts.seed + b,
                                   on_round=(lambda r, b=b: on_round(f"batch {b} round {r}")) if on_round else None)
        for v in variants:
            stats = summarize(samples[v.key])
            v.result["throughput"].append({"batch_size": b, "latency_ms": stats,
                                           "samples_per_s": b * 1000.0 / stats["mean"],
                                           "raw_ms": [round(x, 4) for x in samples[v.key]]})

    if opts.power:
        _measure_power(variants, opts)
    peak, peak_source = peak_rss()
    for v in variants:
        v.result["memory"]["peak_rss_mb"] = round(peak, 1)
        v.result["memory"]["peak_rss_source"] = PEAK_RSS_SOURCES[peak_source]
        v.loaded.close()
    return {
        "version": RESULT_VERSION, "created": started.isoformat(timespec="seconds"),
        "seconds": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 2),
        "machine_fingerprint": machine_fingerprint(), "environment": environment(), "options": opts.to_dict(),
        "latency_input": "real eval examples" if eval_split is not None else "seeded random tensors",
        "peak_rss_mb": round(peak, 1), "peak_rss_source": PEAK_RSS_SOURCES[peak_source],
        "load": _load_report(load_before, _loadavg()), "results": rows,
    }


def _loadavg() -> float | None:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _load_report(before: float | None, after: float | None) -> dict[str, Any]:
    """1-minute load average around the run: above the CPU count, other work competed for the cores (and
    OpenMP runtimes such as torch's slow down by orders of magnitude when oversubscribed)."""
    import os

    cpus = os.cpu_count() or 1
    worst = max((x for x in (before, after) if x is not None), default=None)
    return {"loadavg_1m_before": before, "loadavg_1m_after": after, "cpu_count": cpus,
            "contended": bool(worst is not None and worst > cpus)}


def _prepare_variant(v: _Variant, opts: BenchOptions, eval_split, label_names, stats_cache) -> None:
    t, row = v.target, v.result
    if eval_split is not None and t.meta is not None:
        for b in opts.batches:
            v.feeds[b] = real_feed(t, eval_split.inputs, b)
    else:
        for b in opts.batches:
            v.feeds[b] = synthetic_feed(t, v.loaded, b, opts.shapes, seed=opts.seed)
    names = set(v.loaded.input_names) or set(v.feeds[opts.batches[0]])
    for b in opts.batches:
        v.feeds[b] = {k: x for k, x in v.feeds[b].items() if k in names}
    row["input_shapes"] = {k: list(x.shape) for k, x in v.feeds[opts.batches[0]].items()}
    if opts.model_stats:
        if t.sha256 not in stats_cache:
            stats_cache[t.sha256] = _model_stats(v, opts)
        row.update(stats_cache[t.sha256])
    if eval_split is not None and opts.accuracy:
        if t.meta is None:
            row["accuracy"] = None
            row["accuracy_note"] = "no model.json beside the model: labels and preprocessing unknown"
        else:
            if label_names is not None and list(label_names) != t.labels:
                raise DataError(
                    f"{t.name} predicts labels {t.labels[:6]}{'...' if len(t.labels) > 6 else ''}, the eval data has "
                    f"{list(label_names)[:6]}{'...' if len(label_names) > 6 else ''}",
                    hint="pass --data with the dataset the model was trained on",
                )
            t0 = time.perf_counter()
            encode = t.meta.encoder()
            preds = []
            for start in range(0, len(eval_split), opts.eval_batch_size):
                feed = encode(eval_split.inputs[start : start + opts.eval_batch_size])
                preds.append(v.loaded.run({k: x for k, x in feed.items() if k in names}).argmax(-1))
            pred = np.concatenate(preds)
            row["accuracy"] = float((pred == eval_split.labels).mean())
            row["eval_samples"] = int(len(eval_split))
            row["eval_seconds"] = round(time.perf_counter() - t0, 2)
            log.info("%s: accuracy %.4f on %d eval examples", v.key, row["accuracy"], len(eval_split))


def _model_stats(v: _Variant, opts: BenchOptions) -> dict[str, Any]:
    from edgetl.bench.model_stats import onnx_stats, torch_stats

    one = {k: x[:1] for k, x in v.feeds[opts.batches[0]].items()}
    try:
        if v.target.format == "onnx":
            return onnx_stats(v.target.path, one)
        if v.target.format == "pytorch":
            return torch_stats(v.loaded.model.module, one)
    except Exception as exc:  # stats are context; the timing goes on
        log.warning("params/MACs of %s: %s", v.target.name, exc)
    return {"params": None, "macs": None}


def _measure_power(variants: list[_Variant], opts: BenchOptions) -> None:
    """On a Jetson: tegrastats sampled while each variant runs alone for `power_seconds` (power cannot be split
    between interleaved variants), after one idle second for the idle draw."""
    from edgetl.bench.tegrastats import TegrastatsSampler, summarize_power

    sampler = TegrastatsSampler(interval_ms=100)
    if not sampler.available:
        for v in variants:
            v.result["power"] = {"available": False, "reason": "tegrastats not found (not a Jetson)"}
        return
    b = opts.batches[0]
    with sampler:
        sampler.record(True)
        time.sleep(1.0)
        idle = summarize_power(sampler.samples, 1.0, 1)
        idle_mw = idle.get("mean_mw")
        for v in variants:
            fn = v.loaded.prepare(v.feeds[b])
            sampler.record(True)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < opts.power_seconds:
                fn()
                n += 1
            seconds = time.perf_counter() - t0
            sampler.record(False)
            v.result["power"] = summarize_power(sampler.samples, seconds, n, batch_size=b, idle_mw=idle_mw)
