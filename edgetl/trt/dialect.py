"""Which TensorRT build dialect to use, decided from the installed version (plain logic, tested without TensorRT).

- TensorRT 10.0-10.11 (JetPack 6 ships 10.3): weakly typed network; a Q/DQ model needs `BuilderFlag.INT8`
  (+ `FP16` so the layers left in float may run in half precision), as `trtexec --int8 --fp16`.
- TensorRT >= 10.12 and 11.x (desktop): `NetworkDefinitionCreationFlag.STRONGLY_TYPED` and no precision flags;
  precision comes from the graph (Q/DQ, casts). TensorRT 11 removed the weak-typing flags altogether.
- Implicit INT8 calibration (the calibrator classes) is never used: it was deprecated in 10.1, removed in 11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from edgetl.errors import BackendUnavailableError, RecipeError

DialectChoice = Literal["auto", "weak", "strong"]
STRONG_FROM = (10, 12)  # first release where edgetl builds strongly typed by default
WEAK_UNTIL = (11, 0)  # weak typing is gone from here on


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
        if not m:
            raise BackendUnavailableError(f"cannot read a TensorRT version from {text!r}; expected e.g. '10.3.0'")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def tuple2(self) -> tuple[int, int]:
        return (self.major, self.minor)


@dataclass(frozen=True)
class Dialect:
    strongly_typed: bool
    builder_flags: tuple[str, ...]  # names of tensorrt.BuilderFlag members to set
    reason: str

    @property
    def name(self) -> str:
        return "strongly-typed" if self.strongly_typed else "weakly-typed"

    def to_dict(self) -> dict[str, object]:
        return {"dialect": self.name, "builder_flags": list(self.builder_flags), "reason": self.reason}


def choose_dialect(version: str | TrtVersion, *, has_qdq: bool, choice: DialectChoice = "auto",
                   fp16: bool = True) -> Dialect:
    """The build dialect for this TensorRT version and model.

    has_qdq: the ONNX graph carries QuantizeLinear/DequantizeLinear (explicit INT8).
    choice: `auto` (by version), or force `weak` / `strong` where the version allows it.
    fp16: on a weakly typed build, also let TensorRT pick FP16 kernels (ignored when strongly typed).
    """
    v = version if isinstance(version, TrtVersion) else TrtVersion.parse(version)
    if v.major < 10:
        raise BackendUnavailableError(
            f"TensorRT {v} is too old: edgetl needs TensorRT 10 or newer (tensor-address API, explicit quantization)",
            hint="JetPack 6 ships TensorRT 10.3; on a desktop `pip install 'edgetl[trt]'` installs TensorRT 10/11",
        )
    if choice not in ("auto", "weak", "strong"):
        raise RecipeError(f"dialect {choice!r} is not one of auto, weak, strong")
    if choice == "weak" and v.tuple2 >= WEAK_UNTIL:
        raise RecipeError(
            f"dialect: weak was asked for, but TensorRT {v} removed weak typing (BuilderFlag.INT8/FP16) in 11.0",
            hint="use `dialect: auto` (strongly typed): precision then comes from the model's Q/DQ nodes",
        )
    strong = choice == "strong" or (choice == "auto" and v.tuple2 >= STRONG_FROM)
    if strong:
        why = ("asked for" if choice == "strong" else
               f"TensorRT {v} >= {STRONG_FROM[0]}.{STRONG_FROM[1]}" + (" (11.x is strongly typed only)"
                                                                        if v.major >= 11 else ""))
        detail = ("INT8 where the Q/DQ nodes put it" if has_qdq else
                  "no Q/DQ nodes, so the engine stays in the graph's float precision")
        return Dialect(True, (), f"strongly typed: {why}; precision comes from the graph, {detail}")
    flags: list[str] = []
    if has_qdq:
        flags.append("INT8")
    if fp16:
        flags.append("FP16")
    why = "asked for" if choice == "weak" else f"TensorRT {v} < {STRONG_FROM[0]}.{STRONG_FROM[1]} (e.g. JetPack 6)"
    what = ("Q/DQ model needs INT8" + (" + FP16 for the float layers" if fp16 else "")) if has_qdq else (
        "FP16 kernels allowed" if fp16 else "FP32 only")
    return Dialect(False, tuple(flags), f"weakly typed: {why}; {what}")


def network_flags(trt, dialect: Dialect) -> int:
    """The `create_network` flag bits. TensorRT 11 keeps STRONGLY_TYPED as an ignored member; a later release
    may drop it, in which case networks are strongly typed anyway."""
    if dialect.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def has_qdq_nodes(onnx_bytes: bytes) -> bool:
    """Whether a serialized ONNX graph has Q/DQ nodes. op_type strings are stored verbatim in the protobuf,
    so this needs neither the onnx package nor a full parse."""
    return b"QuantizeLinear" in onnx_bytes or b"DequantizeLinear" in onnx_bytes
