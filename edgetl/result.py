"""What every technique function hands back (`edgetl.prune(...)`, `edgetl.export_onnx(...)`, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """The model a technique made (an EdgeModel, None for file-only techniques), the file or folder it wrote
    (None when no output path was given), and its measurements: the same dict a recipe's report.json shows
    under the stage's `metrics`."""

    model: Any = None
    path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
