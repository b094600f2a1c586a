"""Read an ONNX file a user handed us, and say which file is wrong and how when it is empty, truncated or not
ONNX at all. An empty file parses as an empty ModelProto, so parsing alone is not enough."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgetl.errors import ModelError

REEXPORT = "re-export or re-copy the file (`edgetl compress` writes model.onnx under RUN/stages/*/onnx/)"


def read_onnx(path: str | Path, what: str = "model") -> Any:
    """The ModelProto of `path` (external weights not loaded), or a ModelError naming the file."""
    import onnx

    p = Path(path)
    if not p.exists():
        raise ModelError(f"{what} {str(p)!r} does not exist", hint="pass the path of an .onnx file")
    if not p.is_file():
        raise ModelError(f"{what} {str(p)!r} is a folder, not an ONNX file", hint="pass the path of an .onnx file")
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"{what} {p} is empty (0 bytes); expected an ONNX model", hint=REEXPORT)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends for garbage
        raise ModelError(f"{what} {p} ({size} bytes) is not a readable ONNX model, it is corrupt or truncated: "
                         f"{type(exc).__name__}: {exc}", hint=REEXPORT) from None
    problems = onnx_problems(model)
    if problems:
        raise ModelError(f"{what} {p} ({size} bytes) is not a usable ONNX model (corrupt or truncated?)",
                         problems=problems, hint=REEXPORT)
    return model


def onnx_problems(model: Any) -> list[str]:
    """What a parseable ModelProto lacks to be a model at all (bytes that parse by chance lack these)."""
    out = []
    if not model.HasField("graph") or not model.graph.node:
        out.append("it has no graph nodes")
    elif not model.graph.output:
        out.append("its graph has no outputs")
    if not any(o.domain in ("", "ai.onnx") and o.version > 0 for o in model.opset_import):
        out.append("it declares no ONNX opset (opset_import is missing)")
    return out
