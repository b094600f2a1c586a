"""`build_engine`: a TensorRT engine from the run's ONNX model, built on this device, with its accuracy measured
through the engine itself.

Which ONNX: the newest INT8 model in the `tensorrt` Q/DQ layout (symmetric, zero points 0), else the newest
FP32 model. ONNX Runtime's own layout (asymmetric u8 activations) is refused: TensorRT rejects it. The build
dialect follows the installed TensorRT (see `edgetl.trt.dialect`); layer precisions from the engine inspector go
into the artifact's info and so into manifest.json. Without TensorRT or a GPU, `edgetl validate` stops the
recipe before any training.
"""

from __future__ import annotations

import logging
import shutil
from typing import Literal

from pydantic import Field

from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class BuildEngineConfig(StageConfig):
    type: Literal["build_engine"] = Field(
        description="Build a TensorRT engine from the newest ONNX model (tensorrt Q/DQ layout first, else FP32), "
        "on this machine's GPU, and measure its accuracy through the engine."
    )
    artifact: str | None = Field(None, description="ONNX artifact to build (default: newest INT8 in the tensorrt "
                                 "layout, else newest FP32).")
    shapes: dict[str, int | list[int]] = Field(
        default_factory=dict,
        description="Optimisation profile per dynamic axis: `batch: [1, 1, 32]` (min, opt, max) or `sequence: 128` "
        "(fixed). Defaults: batch 1/1/32; text sequence 1/max_length/max_length.",
    )
    workspace_mb: int = Field(1024, ge=16, le=1 << 20, description="Builder workspace memory pool limit in MiB.")
    dialect: Literal["auto", "weak", "strong"] = Field(
        "auto", description="`auto`: weakly typed + INT8/FP16 flags on TensorRT 10.0-10.11 (JetPack 6), strongly "
        "typed on >= 10.12 and 11.x; `weak`/`strong` force one where the installed version allows it."
    )
    fp16: bool = Field(True, description="Weakly typed builds: allow FP16 kernels for layers left in float.")
    optimization_level: int | None = Field(None, ge=0, le=5, description="TensorRT builder optimisation level "
                                           "(default: TensorRT's own, 3).")
    accuracy: bool = Field(True, description="Measure the engine's accuracy on the eval split.")
    cache_dir: str | None = Field(None, description="Timing and engine caches (default ~/.cache/edgetl/trt, or "
                                  "$EDGETL_CACHE/trt).")


def shape_problems(cfg: BuildEngineConfig, field_prefix: str) -> list[str]:
    from edgetl.errors import RecipeError
    from edgetl.trt.shapes import parse_range

    problems = []
    for axis, value in cfg.shapes.items():
        try:
            parse_range(axis, value, where=f"{field_prefix}.{axis}")
        except RecipeError as exc:
            problems.append(str(exc))
    return problems


class BuildEngineStage(Stage[BuildEngineConfig]):
    type = "build_engine"
    Config = BuildEngineConfig
    default_name = "engine"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.registry import STAGES
        from edgetl.trt.device import static_problem

        cfg = self.config
        problems = shape_problems(cfg, self.field("shapes"))
        if not plan.has("onnx"):
            problems.append(f"{self.field('type')}: build_engine needs an ONNX model: put an `export` stage before it")
        problem = static_problem()
        if problem and not STAGES.get(self.type).missing():  # missing modules are reported from the registry entry
            problems.append(f"{self.field('type')}: build_engine cannot run here: {problem[0]}. {problem[1]}")
        plan.available.append(("engine", "mixed"))
        return problems

    def pick(self, ctx: StageContext) -> Artifact:
        from edgetl.errors import RecipeError, StageError

        cfg = self.config
        onnx = [a for a in ctx.artifacts.values() if a.format == "onnx"]
        if cfg.artifact:
            found = next((a for a in onnx if a.name == cfg.artifact), None)
            if found is None:
                raise RecipeError(f"{self.field('artifact')}: no ONNX artifact named {cfg.artifact!r}; "
                                  f"have {', '.join(a.name for a in onnx)}")
        else:
            trt_layout = [a for a in onnx if a.precision == "int8" and a.info.get("layout") == "tensorrt"]
            floats = [a for a in onnx if a.precision in ("fp32", "fp16")]
            found = (trt_layout or floats or onnx)[-1]
        if found.precision == "int8" and found.info.get("layout") not in ("tensorrt", None):
            raise StageError(
                f"{found.name} has the {found.info.get('layout')} Q/DQ layout (asymmetric activations), which "
                "TensorRT rejects (it takes symmetric int8 with zero points 0)",
                hint="add a quantize stage with `target: tensorrt` (or `layout: tensorrt`) and build from that, "
                     "or set `artifact:` to an FP32 model",
            )
        return found

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.trt.builder import BuildOptions, build_engine
        from edgetl.trt.shapes import parse_range

        cfg = self.config
        src = self.pick(ctx)
        src_path = ctx.path_of(src)
        folder = ctx.work_dir / "engine"
        folder.mkdir()
        opts = BuildOptions(workspace_bytes=cfg.workspace_mb << 20,
                            shapes={k: parse_range(k, v, self.field(f"shapes.{k}")) for k, v in cfg.shapes.items()},
                            dialect=cfg.dialect, fp16=cfg.fp16, optimization_level=cfg.optimization_level,
                            cache_dir=cfg.cache_dir)  # type: ignore[arg-type]
        result = build_engine(src_path, folder / "model.plan", opts)
        for f in src_path.parent.iterdir():  # labels, preprocessing, tokenizer: the engine reads like its ONNX
            if f.name == "model.json" or f.name.startswith("tokenizer"):
                shutil.copyfile(f, folder / f.name)
        info = {**result.info(), "source_onnx": src.name, "source_sha256": src.sha256, "layout": src.info.get("layout")}
        metrics = {}
        if cfg.accuracy:
            metrics = engine_accuracy(ctx, folder / "model.plan")
        ctx.metrics.update({"dialect": result.dialect.name, "builder_flags": list(result.dialect.builder_flags),
                            "int8_layers": result.layers.get("int8_layers"),
                            "compute_layers": result.layers.get("compute_layers"),
                            "engine_cache_hit": result.cached, "build_seconds": round(result.build_seconds, 3),
                            **metrics})
        return [ctx.artifact(self.artifact_name, "engine", src.precision, "engine/model.plan", parent=src.name,
                             metrics=metrics, info=info)]


def engine_accuracy(ctx: StageContext, engine_path) -> dict[str, object]:
    """Top-1 accuracy of the engine itself on the eval split (never the torch or ONNX model's)."""
    import numpy as np

    from edgetl.errors import NonFiniteError
    from edgetl.runtime.meta import read_onnx_meta
    from edgetl.train.finite import nonfinite
    from edgetl.trt.runner import TrtSession

    meta = read_onnx_meta(engine_path)
    data = ctx.data()
    session = TrtSession(engine_path)
    try:
        encode = meta.encoder()
        step = max(1, min(64, session.max_batch() or 64))
        logits = []
        for i in range(0, len(data.eval), step):
            feeds = encode(data.eval.inputs[i : i + step])
            logits.append(session.infer(feeds)[session.output_names[0]])
        out = np.concatenate(logits)
        bad = nonfinite(engine_logits=out)
        if bad:  # fp16 overflow shows up as inf/NaN; argmax would turn it into a plausible accuracy
            raise NonFiniteError(f"the TensorRT engine gives NaN or infinite outputs on the eval split ({bad})",
                                 hint="build it with `fp16: false`, or check the ONNX model")
        acc = float((out.argmax(-1) == data.eval.labels).mean())
    finally:
        session.close()
    log.info("engine accuracy %.4f on %d eval examples", acc, len(data.eval))
    return {"accuracy": acc, "accuracy_source": f"TensorRT engine on {len(data.eval)} eval examples",
            "eval_samples": int(len(data.eval))}
