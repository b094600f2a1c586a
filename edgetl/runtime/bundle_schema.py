"""What a bundle manifest must hold before anything it names is opened: field types, safe names, and every
file the runtime reads (models, engines, tokenizer) listed under `files` with a sha256.

Standard library only (the runtime stays torch- and pydantic-free). Each problem reads `field: what was
found, what was expected`, so a hand-edited or crafted manifest fails with one clear BundleError.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from edgetl.runtime.paths import relpath_problem

TASKS = ("image", "text")
# Model and engine names end up in file names (the TensorRT engine cache), so they are plain words.
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
INSIDE = "a bundle path is relative and stays inside the bundle (like models/m/model.onnx)"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _name_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not NAME.match(value) or set(value) == {"."}:
        return f"{_show(value)} (expected letters, digits, '_', '.', '-')"
    return None


def _preprocessing_problems(pre: Any, task: Any) -> list[str]:
    if not isinstance(pre, dict):
        return [f"preprocessing: got {_kind(pre)}, expected an object"]
    problems = []
    if pre.get("kind") != task:
        problems.append(f"preprocessing.kind: got {pre.get('kind')!r}, expected the task {task!r}")
    if not _str_list(pre.get("input_names")):
        problems.append(f"preprocessing.input_names: got {_show(pre.get('input_names'))}, expected a list of names")
    if task == "image":
        if not _is_int(pre.get("size")) or pre["size"] <= 0:
            problems.append(f"preprocessing.size: got {pre.get('size')!r}, expected a positive integer")
        if pre.get("channels", 3) not in (1, 3) or isinstance(pre.get("channels"), bool):
            problems.append(f"preprocessing.channels: got {pre.get('channels')!r}, expected 1 or 3")
        for key in ("mean", "std"):
            v = pre.get(key, [0.0])
            if not isinstance(v, list) or not v or not all(_is_number(x) for x in v):
                problems.append(f"preprocessing.{key}: got {_show(v)}, expected a list of numbers")
        if isinstance(pre.get("std"), list) and 0 in pre["std"]:
            problems.append(f"preprocessing.std: got {pre['std']!r}, expected no zero")
        if not isinstance(pre.get("resize", "bilinear"), str):
            problems.append(f"preprocessing.resize: got {_kind(pre['resize'])}, expected a string")
    if task == "text":
        ml = pre.get("max_length")
        if ml is not None and (not _is_int(ml) or ml <= 0):
            problems.append(f"preprocessing.max_length: got {ml!r}, expected a positive integer")
    return problems


def _entries(manifest: dict[str, Any], key: str, required: bool) -> tuple[list[dict[str, Any]], list[str]]:
    value = manifest.get(key)
    if value is None and not required:
        return [], []
    if not isinstance(value, list) or (required and not value):
        return [], [f"{key}: got {_show(value)}, expected {'a non-empty list' if required else 'a list'}"]
    bad = [f"{key}.{i}: got {_kind(e)}, expected an object" for i, e in enumerate(value) if not isinstance(e, dict)]
    return [e for e in value if isinstance(e, dict)], bad


def _files_problems(files: Any) -> list[str]:
    if not isinstance(files, dict) or not files:
        return [f"files: got {_kind(files)}, expected an object mapping each file to its sha256 and size"]
    problems = []
    for rel, meta in files.items():
        path_problem = relpath_problem(rel)
        if path_problem:
            problems.append(f"files: {_show(rel)} {path_problem}; {INSIDE}")
        elif not isinstance(meta, dict):
            problems.append(f"files.{rel}: got {_kind(meta)}, expected {{sha256, size_bytes}}")
        else:
            if not isinstance(meta.get("sha256"), str) or not SHA256.match(meta["sha256"]):
                problems.append(f"files.{rel}.sha256: got {meta.get('sha256')!r}, expected 64 lowercase hex digits")
            if not _is_int(meta.get("size_bytes")) or meta["size_bytes"] < 0:
                problems.append(f"files.{rel}.size_bytes: got {meta.get('size_bytes')!r}, expected a byte count")
    return problems


def referenced_files(manifest: dict[str, Any]) -> dict[str, Any]:
    """Field path -> the file it names, for every file the runtime may open."""
    refs: dict[str, Any] = {}
    for key in ("models", "engines"):
        for i, entry in enumerate(manifest.get(key) or []):
            if isinstance(entry, dict):
                refs[f"{key}.{i}.file"] = entry.get("file")
    pre = manifest.get("preprocessing")
    if manifest.get("task") == "text" and isinstance(pre, dict):
        refs["preprocessing.tokenizer_file"] = pre.get("tokenizer_file") or "tokenizer.json"
    return refs


def manifest_problems(manifest: dict[str, Any], layouts: Collection[str]) -> list[str]:
    """Everything wrong with a parsed manifest's structure (its files' bytes are checked elsewhere)."""
    problems: list[str] = []
    task = manifest.get("task")
    if task not in TASKS:
        problems.append(f"task: got {task!r}, expected one of {', '.join(TASKS)}")
    if not _str_list(manifest.get("labels")):
        problems.append(f"labels: got {_show(manifest.get('labels'))}, expected a non-empty list of strings")
    problems += _preprocessing_problems(manifest.get("preprocessing"), task)
    models, bad = _entries(manifest, "models", required=True)
    problems += bad
    seen: set[str] = set()
    for i, m in enumerate(models):
        if (p := _name_problem(m.get("name"))) is not None:
            problems.append(f"models.{i}.name: got {p}")
        elif m["name"] in seen:
            problems.append(f"models.{i}.name: {m['name']!r} appears twice")
        seen.add(str(m.get("name")))
        if not isinstance(m.get("precision"), str):
            problems.append(f"models.{i}.precision: got {m.get('precision')!r}, expected a string such as 'fp32'")
        if m.get("layout", "any") not in layouts:
            problems.append(f"models.{i}.layout: got {_show(m.get('layout'))}, expected one of {', '.join(layouts)}")
        for key in ("inputs", "outputs"):
            if not isinstance(m.get(key, []), list):
                problems.append(f"models.{i}.{key}: got {_kind(m.get(key))}, expected a list")
    engines, bad = _entries(manifest, "engines", required=False)
    problems += bad
    for i, e in enumerate(engines):
        if (p := _name_problem(e.get("name"))) is not None:
            problems.append(f"engines.{i}.name: got {p}")
        if e.get("onnx") not in seen:
            problems.append(f"engines.{i}.onnx: got {e.get('onnx')!r}, expected the name of one of the models")
    defaults = manifest.get("defaults")
    if defaults is not None and (not isinstance(defaults, dict)
                                 or not all(isinstance(v, str) for v in defaults.values())):
        problems.append(f"defaults: got {_show(defaults)}, expected an object backend -> model name")
    files = manifest.get("files")
    problems += _files_problems(files)
    listed = files if isinstance(files, dict) else {}
    for field, rel in referenced_files(manifest).items():
        path_problem = relpath_problem(rel)
        if path_problem:
            problems.append(f"{field}: {_show(rel)} {path_problem}; {INSIDE}")
        elif rel not in listed:
            problems.append(f"{field}: {rel!r} is not listed under files, so it cannot be verified")
    return problems
