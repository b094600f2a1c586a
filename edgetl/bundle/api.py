"""`edgetl.bundle`: the deployable folder (ONNX models, manifest.json with the sha256 of every file, labels,
preprocessing and measured accuracy / latency) from ONNX files edgetl exported, without a recipe run.
Devices open it with `edgetl.runtime.Predictor.from_bundle` (numpy + onnxruntime, no torch)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgetl.result import Result

log = logging.getLogger(__name__)
LATENCY_KEYS = ("p50", "p90", "p95", "p99", "max", "mean", "cov", "n", "noisy")


def bundle(models: Any, out: str | Path, *, measured: Any = None, name: str = "bundle", final: str | None = None,
           sign: str | Path | None = None) -> Result:
    """Write `models` into the bundle folder `out` (new, empty, or an older bundle, replaced in one rename).

    models: an .onnx file written by edgetl.export_onnx (its model.json beside it), a Result of it, a list of
    those, or {name: any of those}; they must share labels and preprocessing. measured: the Result (or its
    metrics) of edgetl.benchmark on these models: accuracy and latency go into the manifest. final: the model
    Predictor.from_bundle loads by default on ONNX Runtime (default: the fastest measured, else the last).
    sign: an Ed25519 private key (PEM), adds manifest.sig. Returns Result(path=out, metrics=the manifest)."""
    from edgetl.bench.fingerprint import environment
    from edgetl.bundle.writer import assemble, write_atomically
    from edgetl.errors import BundleError
    from edgetl.runtime.files import digest_and_size
    from edgetl.runtime.meta import read_onnx_meta

    out = Path(out)
    key = None
    if sign is not None:
        from edgetl.runtime.signing import load_private_key

        key = load_private_key(sign)  # a missing or wrong key fails before anything is written
    artifacts: list[dict[str, Any]] = []
    for model_name, path in _named(models):
        if path.is_dir():
            path = path / "model.onnx"
        if path.suffix != ".onnx" or not path.is_file():
            raise BundleError(f"{path} is not an ONNX file", hint="pass files written by edgetl.export_onnx")
        info = read_onnx_meta(path).info
        sha, size = digest_and_size(path)
        precision = "int8" if info.get("layout") else "fp32"
        artifacts.append({"name": model_name, "format": "onnx", "precision": precision, "path": str(path),
                          "sha256": sha, "size_bytes": size, "info": info, "parent": None, "stage": None})
    names = [str(a["name"]) for a in artifacts]
    if len(set(names)) != len(names):
        raise BundleError(f"two models share a name ({', '.join(names)})", hint="pass {name: path} to name them")
    report = {"artifacts": _measurements(measured), "final": final, "baseline": None}
    manifest = write_atomically(out, lambda tmp: assemble(
        None, tmp, run_name=name, artifacts=artifacts, report=report, environment=environment(), names=names,
        engines=False, source={"api": "edgetl.bundle"}), key)
    log.info("bundle %s: %d model(s), %d files", out, len(manifest["models"]), len(manifest["files"]))
    return Result(None, out, manifest)


def _named(models: Any) -> list[tuple[str, Path]]:
    def path_of(m: Any) -> Path:
        if isinstance(m, Result):
            if m.path is None:
                from edgetl.errors import ModelError

                raise ModelError("a Result without a file was passed where a model file was expected",
                                 hint="pass the Result of edgetl.export_onnx, or the path of an .onnx file")
            return Path(m.path)
        return Path(m)

    def default_name(p: Path) -> str:
        return p.parent.name if p.name == "model.onnx" else p.stem

    if isinstance(models, Mapping):
        return [(str(k), path_of(v)) for k, v in models.items()]
    if isinstance(models, (str, Path, Result)) or not isinstance(models, Iterable):
        models = [models]
    return [(default_name(path_of(m)), path_of(m)) for m in models]


def _measurements(measured: Any) -> list[dict[str, Any]]:
    """Benchmark rows as report.json arranges them, which is what the manifest copies."""
    if measured is None:
        return []
    metrics = measured.metrics if isinstance(measured, Result) else measured
    rows = metrics.get("results", metrics)
    entries = []
    for model_name, row in rows.items():
        entry: dict[str, Any] = {"name": model_name, "accuracy": row.get("accuracy")}
        if row.get("accuracy") is not None:
            entry["accuracy_source"] = f"{row['backend']} run of this file on {row.get('eval_samples')} eval examples"
        lat = row.get("latency_ms")
        if lat:
            entry.update({"latency_ms": {k: lat[k] for k in LATENCY_KEYS if k in lat},
                          "latency_backend": row.get("backend"), "threads": row.get("threads"),
                          "batch_size": row.get("batch_size")})
        entries.append(entry)
    return entries
