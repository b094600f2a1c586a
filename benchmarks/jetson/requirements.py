"""Print edgetl's pip requirements (core + the `jetson` extra) without the ones a Jetson image provides itself.

Used by Dockerfile.jetson after `pip install --no-deps .`: torch and onnxruntime-gpu come from the Jetson wheel
index and TensorRT from JetPack, so edgetl's own `torch` / `onnxruntime` requirements must not pull PyPI's
builds over them (PyPI's `onnxruntime` would shadow `onnxruntime-gpu`: both install the `onnxruntime` module).
Reads the installed package's metadata, so the list never drifts from pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys

PROVIDED = {"torch", "onnxruntime", "onnxruntime-gpu", "tensorrt"}


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


if __name__ == "__main__":
    extra = sys.argv[1] if len(sys.argv) > 1 else "jetson"
    print("\n".join(requirement_lines(importlib.metadata.requires("edgetl") or [], extra)))
