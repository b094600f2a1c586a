"""Print edgetl's pip requirements (core + the `jetson` extra) without the ones a Jetson image provides itself.

Used by Dockerfile.jetson after `pip install --no-deps .`: torch and onnxruntime-gpu come from the Jetson wheel
index and TensorRT from JetPack, so edgetl's own `torch` / `onnxruntime` requirements must not pull PyPI's
builds over them (PyPI's `onnxruntime` would shadow `onnxruntime-gpu`: both install the `onnxruntime` module).
Reads the installed package's metadata, so the list never drifts from pyproject.toml.

    requirements.py jetson            edgetl's requirements + the `jetson` extra, less what the image provides
    requirements.py deps DIST...      what installed distributions need (the Jetson torch / onnxruntime-gpu,
                                      installed with --no-deps from the Jetson index), for a PyPI install
    requirements.py check             `pip check`, where the one expected line (edgetl requires `onnxruntime`,
                                      which the image has as `onnxruntime-gpu`) is not a failure
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

PROVIDED = {"torch", "onnxruntime", "onnxruntime-gpu", "tensorrt"}
# A requirement the image meets under another distribution name (same `onnxruntime` module).
SUBSTITUTES = {"onnxruntime": "onnxruntime-gpu"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(requires: list[str], extra: str = "jetson", provided: set[str] = PROVIDED) -> list[str]:
    out = []
    for req in requires:
        spec, _, marker = req.partition(";")
        name = re.split(r"[\s<>=!~\[(]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name in provided:
            continue
        if "extra" in marker:
            if not re.search(rf"extra\s*==\s*[\"']{re.escape(extra)}[\"']", marker):
                continue
            marker = re.sub(rf"\s*(and\s+)?extra\s*==\s*[\"']{re.escape(extra)}[\"']", "", marker).strip()
        out.append(spec.strip() + (f"; {marker}" if marker else ""))
    return out


def dependency_lines(dists: list[str]) -> list[str]:
    """The requirements (without extras) of installed distributions, e.g. the Jetson torch's sympy, filelock."""
    out: list[str] = []
    for dist in dists:
        for req in importlib.metadata.requires(dist) or []:
            if "extra" not in req.partition(";")[2] and req not in out:
                out.append(req)
    return out


def pip_check_problems(output: str, installed: set[str]) -> list[str]:
    """The lines of `pip check` output that are real problems. Only edgetl's own requirement on a distribution
    whose Jetson build is installed under another name (onnxruntime -> onnxruntime-gpu) is let through."""
    problems = []
    installed = {canonical(n) for n in installed}
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith("No broken requirements found"):
            continue
        m = re.fullmatch(r"edgetl \S+ requires (\S+), which is not installed\.", line)
        if m and SUBSTITUTES.get(canonical(m.group(1))) in installed:
            continue
        problems.append(line)
    return problems


def check() -> int:
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    installed = {d.metadata["Name"] for d in importlib.metadata.distributions() if d.metadata["Name"]}
    problems = pip_check_problems(result.stdout + result.stderr, installed)
    if result.returncode != 0 and not problems and not result.stdout.strip():
        problems = [f"pip check exited {result.returncode} without output"]
    for line in problems:
        print(f"pip check: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "jetson"
    if command == "check":
        sys.exit(check())
    if command == "deps":
        print("\n".join(dependency_lines(sys.argv[2:])))
    else:
        print("\n".join(requirement_lines(importlib.metadata.requires("edgetl") or [], command)))
