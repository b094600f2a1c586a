"""report.json, report.md (+ PNG) and manifest.json of a run. Every number comes from the run's own stage
results; the report only arranges them.

report.json contract (others read it; extend, never rename):
  {"artifacts": [{"name", "stage", "format", "precision", "size_bytes", "accuracy",
                  "latency_ms": {"p50", "p90", "p99", ...}, ...}], "baseline": <name>, "final": <name>, ...}
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from edgetl.recipe.load import recipe_to_dict
from edgetl.recipe.schema import RecipeBase
from edgetl.report.artifact import Artifact, lineage
from edgetl.runtime.files import sha256_file, write_json_atomic

log = logging.getLogger(__name__)
REPORT_VERSION = 1


def _measurements(records) -> dict[str, dict[str, Any]]:
    """Latest benchmark result per artifact name."""
    found: dict[str, dict[str, Any]] = {}
    for rec in records:
        for name, res in (rec.metrics.get("results") or {}).items():
            found[name] = res
    return found


def _artifact_entry(art: Artifact, measured: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": art.name, "stage": art.stage, "format": art.format, "precision": art.precision,
        "size_bytes": art.size_bytes, "params": art.info.get("params"),
        "accuracy": None, "accuracy_source": None, "latency_ms": None,
        "path": art.path, "sha256": art.sha256, "parent": art.parent,
    }
    for key in ("method", "layout", "trainable_params", "total_params", "macs", "opset", "kd_teacher", "calibration",
                "calibration_samples", "calibration_padded_to", "calibration_data", "adapt"):
        if key in art.info:
            entry[key] = art.info[key]
    if art.metrics.get("accuracy") is not None:
        entry["accuracy"] = art.metrics["accuracy"]
        entry["accuracy_source"] = art.metrics.get("accuracy_source", "stage")
    if measured:
        if measured.get("accuracy") is not None:
            entry["accuracy"] = measured["accuracy"]
            entry["accuracy_source"] = f"{measured['backend']} run of this file on {measured['eval_samples']} eval examples"
            if measured.get("eval_data") == "target":
                entry["accuracy_source"] += " of the adaptation target"
                entry["eval_data"] = "target"
        lat = measured.get("latency_ms")
        if lat:
            entry["latency_ms"] = {k: lat[k] for k in ("p50", "p90", "p95", "p99", "max", "mean", "cov", "n", "noisy")}
            entry["latency_backend"] = measured["backend"]
            entry["threads"] = measured["threads"]
            entry["batch_size"] = measured["batch_size"]
    return entry


def _pick_baseline_final(entries: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    onnx = [e for e in entries if e["format"] == "onnx"]
    measured = [e for e in onnx if e["latency_ms"]] or onnx
    baseline = next((e["name"] for e in measured if e["precision"] == "fp32"), measured[0]["name"] if measured else None)
    if not measured:
        last = entries[-1]["name"] if entries else None
        return baseline, last
    # The tensorrt Q/DQ layout is made for TensorRT engines, not for the CPU runtime measured here: it is
    # `final` only when nothing else was produced.
    measured = [e for e in measured if e.get("layout") != "tensorrt"] or measured
    last_stage = measured[-1]["stage"]
    candidates = [e for e in measured if e["stage"] == last_stage]
    final = min(candidates, key=lambda e: e["latency_ms"]["p50"] if e["latency_ms"] else float("inf"))["name"]
    return baseline, final


def check_targets(recipe: RecipeBase, base: dict[str, Any] | None, final: dict[str, Any] | None) -> list[dict[str, Any]]:
    t = recipe.targets
    out = []

    def add(name: str, limit: float, value: float | None, ok: bool | None) -> None:
        out.append({"target": name, "limit": limit, "value": value, "passed": ok})

    acc_f = final.get("accuracy") if final else None
    acc_b = base.get("accuracy") if base else None
    p50_f = final["latency_ms"]["p50"] if final and final.get("latency_ms") else None
    p50_b = base["latency_ms"]["p50"] if base and base.get("latency_ms") else None
    if t.max_accuracy_drop is not None:
        drop = None if acc_f is None or acc_b is None else acc_b - acc_f
        add("max_accuracy_drop", t.max_accuracy_drop, drop, None if drop is None else drop <= t.max_accuracy_drop + 1e-12)
    if t.min_accuracy is not None:
        add("min_accuracy", t.min_accuracy, acc_f, None if acc_f is None else acc_f >= t.min_accuracy)
    if t.max_latency_ms is not None:
        add("max_latency_ms", t.max_latency_ms, p50_f, None if p50_f is None else p50_f <= t.max_latency_ms)
    if t.min_speedup is not None:
        sp = None if not p50_f or not p50_b else p50_b / p50_f
        add("min_speedup", t.min_speedup, sp, None if sp is None else sp >= t.min_speedup)
    if t.max_size_mb is not None:
        mb = final["size_bytes"] / 1e6 if final else None
        add("max_size_mb", t.max_size_mb, mb, None if mb is None else mb <= t.max_size_mb)
    return out


def build_report(recipe: RecipeBase, artifacts: dict[str, Artifact], records) -> dict[str, Any]:
    measured = _measurements(records)
    entries = [_artifact_entry(a, measured.get(a.name)) for a in artifacts.values()]
    baseline, final = _pick_baseline_final(entries)
    by_name = {e["name"]: e for e in entries}
    base = by_name.get(baseline) if baseline else None
    for e in entries:
        if base and e["latency_ms"] and base.get("latency_ms"):
            e["speedup_vs_baseline"] = base["latency_ms"]["p50"] / e["latency_ms"]["p50"]
        if base and base["size_bytes"]:
            e["size_ratio_vs_baseline"] = e["size_bytes"] / base["size_bytes"]
        if base and e.get("accuracy") is not None and base.get("accuracy") is not None:
            e["accuracy_delta_vs_baseline"] = e["accuracy"] - base["accuracy"]
    targets = check_targets(recipe, base, by_name.get(final) if final else None)
    return {
        "version": REPORT_VERSION, "name": recipe.name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "artifacts": entries, "baseline": baseline, "final": final, "targets": targets,
        "targets_passed": all(t["passed"] for t in targets) if targets else None,
        "stages": [{"index": r.index, "type": r.type, "status": r.status, "seconds": r.seconds,
                    "artifacts": r.artifacts,
                    "metrics": {k: v for k, v in r.metrics.items() if k != "results"}} for r in records],
    }


def _thread_settings() -> dict[str, Any]:
    """Thread counts in force in this process (torch only if a stage already imported it)."""
    import os
    import sys

    out: dict[str, Any] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if os.environ.get(k)}
    if "torch" in sys.modules:
        out["torch_intra_op"] = sys.modules["torch"].get_num_threads()
    return out


def build_manifest(recipe: RecipeBase, out_dir: Path, artifacts: dict[str, Artifact], records, recipe_file: str | None,
                   total_seconds: float) -> dict[str, Any]:
    from edgetl import __version__
    from edgetl.bench.fingerprint import environment

    files = []
    for rec in records:
        folder = out_dir / rec.dir
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                files.append({"path": p.relative_to(out_dir).as_posix(), "sha256": sha256_file(p), "size_bytes": p.stat().st_size})

    return {
        "edgetl_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "recipe_file": recipe_file,
        "recipe": recipe_to_dict(recipe),
        "environment": {**environment(), "threads": _thread_settings()},
        "stages": [{"index": r.index, "type": r.type, "id": r.id, "key": r.key, "dir": r.dir, "status": r.status,
                    "seconds": r.seconds, "artifacts": r.artifacts} for r in records],
        "total_seconds": round(total_seconds, 3),
        "artifacts": [{**a.to_dict(), "lineage": lineage(artifacts, a.name)} for a in artifacts.values()],
        "files": files,
    }


def write_reports(recipe: RecipeBase, out_dir: Path, artifacts: dict[str, Artifact], records, *,
                  recipe_file: str | None, total_seconds: float,
                  selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """`selection`: the candidate ranking of `model.source: auto`, kept as `model_selection` in both files."""
    from edgetl.report.markdown import render_markdown, render_plot

    report = build_report(recipe, artifacts, records)
    manifest = build_manifest(recipe, out_dir, artifacts, records, recipe_file, total_seconds)
    if selection is not None:
        report["model_selection"] = manifest["model_selection"] = selection
    write_json_atomic(out_dir / "manifest.json", manifest)
    plot = render_plot(report, out_dir / "report.png")
    report["plot"] = plot.name if plot else None
    write_json_atomic(out_dir / "report.json", report)
    md = render_markdown(report, manifest)
    tmp = out_dir / ".report.md.tmp"
    tmp.write_text(md)
    tmp.replace(out_dir / "report.md")
    return report
