"""`edgetl build-engine MODEL.onnx`: a TensorRT engine for this device, with the build dialect chosen by
the installed TensorRT version, an optimisation profile from --shapes, and timing/engine caches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def build_engine(
    model: Annotated[Path, typer.Argument(help="ONNX file (an edgetl export: model.json beside it names the axes).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Engine file to write (default: MODEL.plan beside the ONNX).")] = None,
    workspace: Annotated[str, typer.Option("--workspace", help="Builder workspace limit: MiB, or 512M / 2G.")] = "1024",
    shapes: Annotated[
        str | None,
        typer.Option("--shapes", help="Profile per dynamic axis, AXIS=MIN:OPT:MAX or AXIS=N, comma-separated "
                     "(default batch=1:1:32; text: sequence=1:L:L).", show_default=False),
    ] = None,
    dialect: Annotated[str, typer.Option("--dialect", help="auto (by TensorRT version), weak, or strong.")] = "auto",
    fp16: Annotated[bool, typer.Option("--fp16/--no-fp16", help="Weakly typed builds: allow FP16 kernels.")] = True,
    opt_level: Annotated[int | None, typer.Option("--opt-level", help="Builder optimisation level 0-5.", show_default=False)] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Timing + engine caches (default ~/.cache/edgetl/trt).",
                                                  show_default=False)] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always build (the timing cache is still used).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging (TensorRT's info messages).")] = False,
) -> None:
    """Build a TensorRT engine from MODEL on this machine's GPU and print its layer precisions."""
    from edgetl.commands.guard import run_guarded
    from edgetl.log import setup_logging

    setup_logging(verbose)

    def go():
        from edgetl.errors import RecipeError
        from edgetl.trt.builder import BuildOptions, parse_workspace
        from edgetl.trt.builder import build_engine as build
        from edgetl.trt.shapes import parse_shapes

        if dialect not in ("auto", "weak", "strong"):
            raise RecipeError(f"--dialect {dialect!r} is not one of auto, weak, strong")
        if opt_level is not None and not 0 <= opt_level <= 5:
            raise RecipeError(f"--opt-level {opt_level} is outside 0-5")
        opts = BuildOptions(workspace_bytes=parse_workspace(workspace), shapes=parse_shapes(shapes), dialect=dialect,
                            fp16=fp16, optimization_level=opt_level, cache_dir=cache_dir, use_engine_cache=not no_cache)
        result = build(model, out or model.with_suffix(".plan"), opts)
        info = result.info()
        layers = info["layers"]
        typer.echo(f"TensorRT {info['trt_version']} on {info['device']} (SM {info['compute_capability']}): "
                   f"{result.dialect.reason}")
        for name, s in info["profile"].items():
            typer.echo(f"  profile {name}: min {s['min']} opt {s['opt']} max {s['max']}")
        if layers.get("compute_layers") is not None:
            typer.echo(f"  layers: {layers['layers']} ({layers['compute_layers']} compute), by precision "
                       f"{layers['compute_by_precision']}; INT8 {layers['int8_layers']} ({100 * layers['int8_fraction']:.0f} %)")
        source = "engine cache" if result.cached else f"built in {result.build_seconds:.1f} s"
        typer.echo(f"wrote {result.engine_path} ({source}; key {result.key[:16]})")

    run_guarded(go)
