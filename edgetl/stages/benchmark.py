"""`benchmark`: latency and accuracy of the artifacts themselves, measured side by side.

Accuracy comes from running each deployed file on the eval split (never from the torch model); latency from
interleaved timing with a fixed thread count, so the ratios between artifacts hold on a noisy machine. The
measurement is `edgetl.benchmark`'s (edgetl/bench/api.py), the same code `edgetl bench` runs.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field

from edgetl.bench.config import BenchmarkConfig
from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class BenchmarkStageConfig(BenchmarkConfig, StageConfig):
    type: Literal["benchmark"] = Field(description="Measure accuracy and latency of every ONNX artifact so far.")
    eval_data: Literal["source", "target"] = Field(
        "source", description="Accuracy (and latency inputs) on `source`: the recipe's eval split, or `target`: the "
        "labelled eval split of the adaptation target (`adapt.target` of the newest finetune stage before this one).")
    artifacts: list[str] | None = Field(None, description="Artifact names to measure (default: every ONNX artifact).")


def measure_artifacts(ctx: StageContext, cfg: BenchmarkStageConfig, targets: list[Artifact], index: int | None = None
                      ) -> dict[str, dict[str, Any]]:
    from edgetl.bench.api import measure
    from edgetl.bench.runner import target_from_path

    data = ctx.data()
    eval_split, label_names = data.eval, data.label_names
    if cfg.eval_data == "target":
        from edgetl.data.datasets import load_target
        from edgetl.errors import DataError
        from edgetl.stages.finetune import adapt_target

        target = load_target(adapt_target(ctx.recipe, len(ctx.recipe.stages) if index is None else index))
        if target.eval is None or len(target.eval) == 0:
            raise DataError(f"eval_data: target, but the target data ({target.source}) has no labelled eval split",
                            hint="give adapt.target.eval_path a folder of class folders, or use eval_data: source")
        eval_split, label_names = target.eval, target.label_names
    bench_targets = []
    for art in targets:
        t = target_from_path(ctx.path_of(art), name=art.name)[0]
        t.precision = art.precision
        bench_targets.append(t)
    result = measure(bench_targets, cfg, eval_split=eval_split, label_names=label_names, seed=ctx.recipe.seed,
                     progress=ctx.progress)
    ctx.metrics["machine_fingerprint"] = result["machine_fingerprint"]
    ctx.metrics["peak_rss_mb"] = result["peak_rss_mb"]
    if cfg.eval_data == "target":
        ctx.metrics["eval_data"] = "target"
        for row in result["results"].values():
            row["eval_data"] = "target"
    return result["results"]


class BenchmarkStage(Stage[BenchmarkStageConfig]):
    type = "benchmark"
    Config = BenchmarkStageConfig
    default_name = "benchmark"

    def _formats(self) -> tuple[str, ...]:
        """Artifact formats the configured backend runs (from the backend class when it can be imported)."""
        backend = self.config.backend  # type: ignore[attr-defined]
        defaults = {"torch": ("pytorch",), "tensorrt": ("engine", "onnx")}.get(backend, ("onnx",))
        from edgetl.registry import BACKENDS

        if backend in BACKENDS.names():
            try:
                return tuple(BACKENDS.get(backend).load().formats)
            except ImportError:
                return defaults
        return defaults

    def problems(self, plan: PlanState, recipe) -> list[str]:
        from edgetl.registry import BACKENDS

        cfg = self.config
        problems = []
        formats = self._formats()
        if not any(plan.has(f) for f in formats):
            what = " or ".join(formats)
            problems.append(f"{self.field('type')}: benchmark on {cfg.backend} needs a {what} artifact before it"
                            + (": put an `export` stage before it" if "onnx" in formats else ""))
        if cfg.backend in BACKENDS.names():
            entry = BACKENDS.get(cfg.backend)
            if entry.missing():
                problems.append(f"{self.field('backend')}: {cfg.backend} needs {', '.join(entry.missing())}: "
                                f"{entry.install_hint()}")
            else:
                from edgetl.errors import BackendUnavailableError

                try:
                    entry.load()().check_available()  # e.g. onnxruntime without the CUDA provider
                except BackendUnavailableError as exc:
                    problems.append(f"{self.field('backend')}: {exc}: {exc.hint or entry.install_hint()}")
        else:
            problems.append(f"{self.field('backend')}: backend {cfg.backend!r} is not registered here "
                            f"(have {', '.join(BACKENDS.names())})")
        if cfg.eval_data == "target":
            problems += self._target_problems(recipe)
        return problems

    def _target_problems(self, recipe) -> list[str]:
        from pathlib import Path

        from edgetl.data.datasets import unlabelled_images
        from edgetl.stages.finetune import adapt_target

        target = adapt_target(recipe, self.index)
        if target is None:
            return [f"{self.field('eval_data')}: `target` means the target data of a finetune stage's `adapt:` "
                    "before this stage, and there is none; add `adapt:` to the finetune stage or use eval_data: source"]
        if target.name == "imagefolder" and target.path and unlabelled_images(Path(target.path)) is not None \
                and not target.eval_path:
            return [f"{self.field('eval_data')}: the target {target.path} is unlabelled (images without class "
                    "folders), so it has no accuracy to measure; give adapt.target.eval_path a labelled folder of "
                    "class folders, or use eval_data: source"]
        return []

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.errors import RecipeError

        cfg = self.config
        formats = self._formats()
        arts = [a for a in ctx.artifacts.values() if a.format in formats]
        if cfg.artifacts:
            unknown = [n for n in cfg.artifacts if n not in {a.name for a in arts}]
            if unknown:
                raise RecipeError(f"{self.field('artifacts')}: no {'/'.join(formats)} artifact named {unknown}; "
                                  f"have {[a.name for a in arts]}")
            arts = [a for a in arts if a.name in cfg.artifacts]
        ctx.metrics["results"] = measure_artifacts(ctx, cfg, arts, self.index)
        return []
