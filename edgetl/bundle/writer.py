"""Write a deployment bundle: the files an app needs and a manifest that describes and hashes them.

Sources are the run's own records (report-style entries for accuracy and latency, artifact records for
paths, hashes and facts), so `edgetl bundle RUN_DIR` and the `bundle` stage produce the same manifest.
Each source file is checked against the sha256 the run recorded before it is copied.

Layout of a bundle (and nothing else):
    manifest.json
    models/<name>/model.onnx        (+ model.onnx.data when the weights are external)
    engines/<name>.plan             TensorRT engines built by a `build_engine` stage, if any
    tokenizer.json                  text models only
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from edgetl.errors import BundleError
from edgetl.runtime.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, LAYOUT_BACKENDS, MANIFEST, seal
from edgetl.runtime.files import digest_and_size, files_of, sha256_file
from edgetl.runtime.paths import relpath_problem

log = logging.getLogger(__name__)

QUANT_KEYS = ("method", "layout", "calibration", "calibration_samples", "per_channel", "activation_type",
              "weight_type", "reduce_range", "op_types", "qdq_nodes")
MEASURE_KEYS = ("accuracy", "accuracy_source", "latency_ms", "latency_backend", "threads", "batch_size",
                "speedup_vs_baseline", "accuracy_delta_vs_baseline")
ENGINE_KEYS = ("trt_version", "device", "compute_capability", "jetpack", "dialect", "dialect_reason",
               "builder_flags", "profile", "cache_key", "workspace_bytes", "layers", "build_seconds",
               "sm_count", "total_memory_bytes", "board")  # the board: the runtime matches engines on it


def layout_of(artifact: dict[str, Any]) -> str:
    """The backend layout of an ONNX artifact: its quantization layout, or `any` for a float graph."""
    info = artifact.get("info") or {}
    if artifact.get("precision") in ("fp32", "fp16") or not info.get("layout"):
        return "any"
    return str(info["layout"])


def onnx_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of the artifact (name, dtype, shape), as the bundle manifest lists them."""
    from edgetl.backends.onnx_file import read_onnx
    from edgetl.backends.onnx_graph import io_spec

    spec = io_spec(read_onnx(path, "artifact"))  # a corrupt or truncated file is an error naming it (exit 2)
    return {"inputs": spec["inputs"], "outputs": spec["outputs"]}


def select_models(artifacts: list[dict[str, Any]], report: dict[str, Any], names: list[str] | None) -> list[dict[str, Any]]:
    """Explicit names, or for each layout the report's `final` when it has that layout, else the newest."""
    onnx = [a for a in artifacts if a["format"] == "onnx"]
    if names:
        by_name = {a["name"]: a for a in artifacts}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise BundleError(f"the run has no artifact named {', '.join(unknown)}; its ONNX artifacts are "
                              f"{', '.join(a['name'] for a in onnx) or 'none'}")
        wrong = [n for n in names if by_name[n]["format"] != "onnx"]
        if wrong:
            raise BundleError(f"{', '.join(wrong)} is not an ONNX artifact; a bundle ships ONNX models (engines "
                              "come along with the ONNX model they were built from)")
        return [by_name[n] for n in names]
    if not onnx:
        raise BundleError("the run has no ONNX artifact to bundle", hint="add an `export` stage to the recipe")
    chosen: dict[str, dict[str, Any]] = {}
    for a in onnx:
        chosen[layout_of(a)] = a  # newest wins ...
    final = report.get("final")
    for a in onnx:
        if a["name"] == final:
            chosen[layout_of(a)] = a  # ... unless the report's final has that layout
    order = {a["name"]: i for i, a in enumerate(onnx)}
    return sorted(chosen.values(), key=lambda a: order[a["name"]])


def choose_defaults(models: list[dict[str, Any]], final: str | None) -> dict[str, str]:
    """The model `Predictor.from_bundle` loads per backend when none is named.

    onnxruntime: the report's final model when it is in a layout made for ONNX Runtime (or float), else the
    fastest measured such model, else the newest; tensorrt: the newest tensorrt-layout model, else float."""
    defaults: dict[str, str] = {}
    native = [m for m in models if m["layout"] in ("onnxruntime", "any")]
    timed = [m for m in native if m.get("latency_ms")]
    by_name = {m["name"]: m for m in models}
    if final in by_name and by_name[final]["layout"] in ("onnxruntime", "any"):
        defaults["onnxruntime"] = str(final)
    elif timed:
        defaults["onnxruntime"] = min(timed, key=lambda m: m["latency_ms"]["p50"])["name"]
    else:
        pick = [m for m in native if m["layout"] == "onnxruntime"] or native or models
        defaults["onnxruntime"] = pick[-1]["name"]
    trt = [m for m in models if m["layout"] == "tensorrt"] or [m for m in models if m["layout"] == "any"]
    if trt:
        defaults["tensorrt"] = trt[-1]["name"]
    return defaults


def _check_source(run_dir: Path | None, art: dict[str, Any]) -> Path:
    if run_dir is None:  # files handed to edgetl.bundle directly: their own paths, hashed when listed
        return _check_file(Path(art["path"]), art)
    problem = relpath_problem(art["path"])
    if problem:
        raise BundleError(f"artifact {art['name']}: its path {art['path']!r} {problem}; an artifact of {run_dir} "
                          "must sit inside it",
                          hint="the run's manifest.json was edited: rerun `edgetl compress` to rewrite it")
    path = run_dir / art["path"]
    if not path.exists():
        raise BundleError(f"artifact {art['name']}: {path} is missing from the run",
                          hint="run `edgetl compress` again on the recipe to rebuild it")
    return _check_file(path, art)


def _check_file(path: Path, art: dict[str, Any]) -> Path:
    if not path.exists():
        raise BundleError(f"model {art['name']}: {path} does not exist")
    sha, _ = digest_and_size(path)
    if art.get("sha256") and sha != art["sha256"]:
        raise BundleError(f"artifact {art['name']}: {path} changed after the run recorded it "
                          f"(sha256 {sha[:12]}..., recorded {art['sha256'][:12]}...)",
                          hint="rerun `edgetl compress` so the run's records match its files")
    return path


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def assemble(run_dir: Path | None, out: Path, *, run_name: str, artifacts: list[dict[str, Any]], report: dict[str, Any],
             environment: dict[str, Any], names: list[str] | None = None, engines: bool = True,
             source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the bundle's files into `out` (an empty or new folder) and return its manifest. Artifact paths are
    relative to `run_dir`, or, with run_dir None, the files' own paths."""
    from edgetl import __version__
    from edgetl.runtime.meta import read_onnx_meta

    measured = {e["name"]: e for e in report.get("artifacts") or []}
    selected = select_models(artifacts, report, names)
    out.mkdir(parents=True, exist_ok=True)
    models: list[dict[str, Any]] = []
    first_meta = None
    for art in selected:
        src = _check_source(run_dir, art)
        meta = read_onnx_meta(src)
        if first_meta is None:
            first_meta = meta
        elif meta.labels != first_meta.labels or meta.preprocessing != first_meta.preprocessing:
            raise BundleError(f"{art['name']} and {selected[0]['name']} disagree on labels or preprocessing; one "
                              "bundle serves one task", hint="bundle them separately with --artifact")
        folder = f"models/{art['name']}"
        for f in files_of(src):
            _copy(f, out / folder / f.name)
        io = onnx_io(src)
        info = art.get("info") or {}
        entry: dict[str, Any] = {
            "name": art["name"], "file": f"{folder}/{src.name}", "format": "onnx", "precision": art["precision"],
            "layout": layout_of(art), "runs_on": list(LAYOUT_BACKENDS[layout_of(art)]), "opset": info.get("opset"),
            "params": info.get("params"), "size_bytes": art.get("size_bytes"),
            "inputs": io["inputs"], "outputs": io["outputs"],
            "quantization": {k: info[k] for k in QUANT_KEYS if k in info} if art["precision"] == "int8" else None,
            "source": {"artifact_sha256": art.get("sha256"), "stage": art.get("stage"), "parent": art.get("parent"),
                       "lineage": art.get("lineage")},
        }
        m = measured.get(art["name"]) or {}
        entry.update({k: m.get(k) for k in MEASURE_KEYS})
        models.append(entry)
    assert first_meta is not None
    pre = first_meta.preprocessing.to_dict()
    requires = ["numpy", "onnxruntime"]
    if first_meta.task == "text":
        tok = first_meta.path.parent / (first_meta.preprocessing.tokenizer_file or "tokenizer.json")
        if not tok.exists():
            raise BundleError(f"{tok} is missing: a text model's tokenizer must sit next to its ONNX file")
        _copy(tok, out / "tokenizer.json")
        pre["tokenizer_file"] = "tokenizer.json"
        requires.append("tokenizers")
    engine_entries: list[dict[str, Any]] = []
    if engines:
        included = {m["name"] for m in models}
        for art in artifacts:
            if art["format"] != "engine" or art.get("parent") not in included:
                continue
            src = _check_source(run_dir, art)
            rel = f"engines/{art['name']}.plan"
            _copy(src, out / rel)
            info = art.get("info") or {}
            m = measured.get(art["name"]) or {}
            engine_entries.append({"name": art["name"], "file": rel, "onnx": art["parent"], "precision": art["precision"],
                                   **{k: info.get(k) for k in ENGINE_KEYS}, **{k: m.get(k) for k in MEASURE_KEYS}})
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(out).as_posix()] = {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
    manifest = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "name": run_name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "edgetl_version": __version__,
        "task": first_meta.task, "labels": first_meta.labels, "preprocessing": pre,
        "models": models, "engines": engine_entries, "defaults": choose_defaults(models, report.get("final")),
        "baseline": report.get("baseline"), "final": report.get("final"),
        "libraries": dict(environment.get("libraries") or {}),
        "runtime": {"requires": requires, "optional": {"tensorrt": ["tensorrt", "cuda-python"]},
                    "loader": "edgetl.runtime.Predictor.from_bundle(path)"},
        "measured_on": {k: environment.get(k) for k in ("cpu", "cpu_flags", "cpu_count", "machine", "os", "python",
                                                        "jetson") if environment.get(k) is not None},
        "source": dict(source or {}),
        "files": files,
    }
    (out / MANIFEST).write_text(seal(manifest), encoding="utf-8")
    return manifest


def _read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's manifest.json and report.json, refused with the file's name when they are not a run's."""
    import json

    if not run_dir.is_dir():
        raise BundleError(f"run folder {run_dir} does not exist or is not a folder",
                          hint="pass the --out folder of a finished `edgetl compress` run")
    records = {}
    for fname in ("manifest.json", "report.json"):
        p = run_dir / fname
        if not p.is_file():
            raise BundleError(f"{run_dir} has no {fname}, so it is not a finished edgetl run",
                              hint=f"run `edgetl compress RECIPE --out {run_dir}` first")
        try:
            records[fname] = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{p} is not valid JSON ({exc}), so {run_dir} is not a readable edgetl run",
                              hint=f"run `edgetl compress RECIPE --out {run_dir}` again to rewrite it") from None
        if not isinstance(records[fname], dict):
            raise BundleError(f"{p} holds a {type(records[fname]).__name__}, expected an edgetl run's {fname}")
    artifacts = records["manifest.json"].get("artifacts")
    keys = ("name", "format", "path")
    if not isinstance(artifacts, list) or not all(
            isinstance(a, dict) and all(isinstance(a.get(k), str) for k in keys) for a in artifacts):
        raise BundleError(f"{run_dir / 'manifest.json'} has no list of artifacts (each with {', '.join(keys)}), so "
                          f"{run_dir} is not an edgetl run folder (a bundle folder is not a run)",
                          hint="pass the --out folder of a finished `edgetl compress` run")
    return records["manifest.json"], records["report.json"]


def write_bundle_from_run(run_dir: str | Path, out: str | Path, *, names: list[str] | None = None,
                          engines: bool = True, sign: str | Path | None = None) -> dict[str, Any]:
    """`edgetl bundle RUN_DIR --out DIR`: read the run's report.json and manifest.json, write DIR atomically.

    sign: an Ed25519 private key (PEM file); DIR then carries manifest.sig, its signature of manifest.json."""
    run_dir, out = Path(run_dir), Path(out)
    key = None
    if sign is not None:
        from edgetl.runtime.signing import load_private_key

        key = load_private_key(sign)  # a missing or wrong key fails before anything is written
    run_manifest, report = _read_run(run_dir)
    manifest = write_atomically(out, lambda tmp: assemble(
        run_dir, tmp, run_name=report.get("name") or run_dir.name, artifacts=run_manifest["artifacts"], report=report,
        environment=run_manifest.get("environment") or {}, names=names, engines=engines,
        source={"run": run_dir.name, "recipe_file": run_manifest.get("recipe_file"),
                "run_created": run_manifest.get("created")}), key)
    log.info("bundle %s: %d model(s), %d engine(s), %d files%s", out, len(manifest["models"]),
             len(manifest["engines"]), len(manifest["files"]), ", signed" if key is not None else "")
    return manifest


def write_atomically(out: Path, write: Any, key: Any = None) -> dict[str, Any]:
    """`write(tmp)` fills a scratch folder beside `out` and returns the manifest; signed with `key` if given, it
    then replaces `out` (new, empty, or an older bundle) in one rename, so a reader never sees half a bundle."""
    _check_target(out)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        manifest = write(tmp)
        if key is not None:
            from edgetl.runtime.signing import sign_bundle

            sign_bundle(tmp, key)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _check_target(out: Path) -> None:
    """Replace an older bundle or an empty folder; never anything else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"--out {out} exists and is a file", hint="pass a folder path for the bundle")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BundleError(f"--out {out} is a non-empty folder that is not an edgetl bundle; refusing to overwrite it",
                          hint="pass a new or empty folder, or an older bundle to replace")
    if (out / MANIFEST).is_file():
        import json

        try:
            fmt = json.loads((out / MANIFEST).read_text()).get("format")
        except (ValueError, AttributeError):
            fmt = None
        if fmt != BUNDLE_FORMAT:
            raise BundleError(f"--out {out} holds a manifest.json that is not an edgetl bundle's; refusing to overwrite it")
