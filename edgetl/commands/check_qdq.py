"""`edgetl check-qdq MODEL.onnx --target tensorrt`: every violation of TensorRT's Q/DQ rules, exit 1 if any."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def check_qdq(
    model: Annotated[Path, typer.Argument(help="An INT8 Q/DQ ONNX file.")],
    target: Annotated[str, typer.Option("--target", help="Rules to check: tensorrt.")] = "tensorrt",
    allow_float: Annotated[list[str] | None, typer.Option(
        "--allow-float", help="A weighted node meant to stay float (repeatable); also read from the edgetl "
        "sidecar model.json (info.float_nodes) when present.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the violations as JSON.")] = False,
) -> None:
    """List every TensorRT Q/DQ rule violation of MODEL (exit 1 if any, 2 on bad input)."""
    from edgetl.commands.guard import run_guarded

    def go() -> int:
        from edgetl.backends.onnx_file import read_onnx
        from edgetl.errors import RecipeError
        from edgetl.quant.check_qdq import check_qdq as run_check
        from edgetl.quant.check_qdq import format_violations

        if target != "tensorrt":
            raise RecipeError(f"--target {target!r} is not supported; expected `tensorrt`",
                              hint="ONNX Runtime runs any valid Q/DQ model, so only TensorRT's rules are checked")
        proto = read_onnx(model)  # missing, empty, truncated or not ONNX: exit 2 naming the file
        allowed = set(allow_float or [])
        sidecar = model.parent / "model.json"
        if sidecar.exists():
            try:
                allowed |= set(json.loads(sidecar.read_text()).get("info", {}).get("float_nodes") or [])
            except (json.JSONDecodeError, AttributeError):
                pass
        try:
            violations = run_check(proto, allow_float=allowed)
        except Exception as exc:  # noqa: BLE001 - a file onnx cannot parse is a user input problem
            raise RecipeError(f"{model} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
        if as_json:
            typer.echo(json.dumps({"model": str(model), "target": target, "allowed_float": sorted(allowed),
                                   "violations": [v.to_dict() for v in violations]}, indent=2))
        else:
            for line in format_violations(violations):
                typer.echo(line)
            typer.echo(f"{model}: {len(violations)} TensorRT Q/DQ rule violation(s)"
                       + (f"; {len(allowed)} node(s) allowed to stay float" if allowed else ""))
        return 1 if violations else 0

    code = run_guarded(go)
    if code:
        raise typer.Exit(code)
