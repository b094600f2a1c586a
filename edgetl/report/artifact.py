"""Artifacts: the files a stage produces (a PyTorch model folder, an ONNX model), with lineage and hashes, as
report.json lists them. Here, below the stages that make them and the runner that records them. The hashing and
atomic-write helpers are in `edgetl.runtime.files`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Artifact:
    name: str
    stage: str  # stage id, e.g. "00-finetune"
    format: str  # "pytorch" | "onnx"
    precision: str  # "fp32" | "int8" | ...
    path: str  # relative to the run directory: a folder (pytorch) or a .onnx file
    parent: str | None = None  # the artifact it was made from
    sha256: str = ""
    size_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # measured numbers (accuracy, ...)
    info: dict[str, Any] = field(default_factory=dict)  # facts (params, opset, layout, method, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(**data)

    def resolve(self, run_dir: Path) -> Path:
        return run_dir / self.path


def lineage(artifacts: dict[str, Artifact], name: str) -> list[str]:
    """`name`, its parent, the parent's parent, ... (newest first); stops at a missing parent or a cycle."""
    chain, cur = [], artifacts.get(name)
    while cur is not None and cur.name not in chain:
        chain.append(cur.name)
        cur = artifacts.get(cur.parent) if cur.parent else None
    return chain
