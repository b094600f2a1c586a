"""The sidecar `model.json` next to every exported ONNX file: labels, preprocessing, input/output names.
torch-free, so deployed apps and the benchmark read it the same way."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import ModelError
from edgetl.runtime.preprocess import Preprocessing, TextEncoder, encode_images

ONNX_META_FORMAT = "edgetl-onnx"


@dataclass
class OnnxMeta:
    path: Path  # the .onnx file
    labels: list[str]
    preprocessing: Preprocessing
    task: str
    info: dict[str, Any] = field(default_factory=dict)

    def encoder(self):
        pre = self.preprocessing
        if pre.kind == "image":
            return lambda raw, **_: encode_images(raw, pre)
        tok = self.path.parent / (pre.tokenizer_file or "tokenizer.json")
        if not tok.exists():
            raise ModelError(f"{tok} is missing: the text model's tokenizer must sit next to {self.path.name}")
        return TextEncoder(tok, pre)


def meta_path(onnx_path: Path) -> Path:
    return onnx_path.parent / "model.json"


def write_onnx_meta(onnx_path: Path, *, labels: list[str], preprocessing: Preprocessing, task: str,
                    info: dict[str, Any]) -> None:
    data = {"format": ONNX_META_FORMAT, "version": 1, "model": onnx_path.name, "task": task, "labels": labels,
            "preprocessing": preprocessing.to_dict(), "info": info}
    meta_path(onnx_path).write_text(json.dumps(data, indent=2))


def read_onnx_meta(onnx_path: str | Path) -> OnnxMeta:
    onnx_path = Path(onnx_path)
    mp = meta_path(onnx_path)
    if not mp.exists():
        raise ModelError(
            f"{onnx_path} has no {mp.name} beside it, so its labels and preprocessing are unknown",
            hint="use an ONNX file exported by edgetl (its folder holds model.json), or pass --data only with one",
        )
    data = json.loads(mp.read_text())
    if data.get("format") != ONNX_META_FORMAT:
        raise ModelError(f"{mp} is not an edgetl ONNX sidecar (format={data.get('format')!r})")
    return OnnxMeta(onnx_path, list(data["labels"]), Preprocessing.from_dict(data["preprocessing"]), data["task"],
                    data.get("info", {}))
