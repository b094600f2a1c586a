"""Stage base class. A subclass implements only the technique (`execute`); the public `run` here does the
timing, logging and artifact bookkeeping, and `problems` lets `edgetl validate` reject a bad chain
before any training starts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from edgetl.recipe.schema import StageConfig
from edgetl.report.artifact import Artifact
from edgetl.runtime.files import digest_and_size

if TYPE_CHECKING:
    from edgetl.data.datasets import DataBundle
    from edgetl.models.base import EdgeModel
    from edgetl.recipe.schema import RecipeBase

log = logging.getLogger(__name__)


@dataclass
class PlanState:
    """What exists before a stage runs, for static checks: artifact formats/precisions and data task."""

    task: str
    available: list[tuple[str, str]] = field(default_factory=lambda: [("pytorch", "fp32")])  # (format, precision)

    def has(self, fmt: str, precision: str | None = None) -> bool:
        return any(f == fmt and (precision is None or p == precision) for f, p in self.available)


class StageContext:
    """What a running stage sees: the recipe, earlier artifacts, data, and where to write."""

    def __init__(self, *, recipe: RecipeBase, run_dir: Path, stage_id: str, work_dir: Path, final_rel: str,
                 artifacts: dict[str, Artifact], data_loader, source_loader, progress=None,
                 records: list[Any] | None = None):
        self.recipe = recipe
        self.run_dir = run_dir
        self.stage_id = stage_id
        self.work_dir = work_dir  # physical folder the stage writes into (renamed into place when done)
        self.final_rel = final_rel  # where work_dir ends up, relative to run_dir
        self.artifacts = artifacts
        self.records = list(records or [])  # the runner's StageRecords of the stages before this one
        self._data_loader = data_loader
        self._source_loader = source_loader
        self.progress = progress
        self.metrics: dict[str, Any] = {}

    # ---- inputs
    def data(self) -> DataBundle:
        return self._data_loader()

    def latest(self, fmt: str, precision: str | None = None) -> Artifact | None:
        for art in reversed(list(self.artifacts.values())):
            if art.format == fmt and (precision is None or art.precision == precision):
                return art
        return None

    def path_of(self, artifact: Artifact) -> Path:
        return artifact.resolve(self.run_dir)

    def current_model(self) -> tuple[EdgeModel, str | None]:
        """The newest PyTorch model (or the recipe's source model) and the name of its artifact."""
        from edgetl.models.base import load_model

        art = self.latest("pytorch")
        if art is None:
            return self._source_loader(), None
        return load_model(self.path_of(art)), art.name

    # ---- outputs
    def artifact(self, name: str, fmt: str, precision: str, rel_path: str, parent: str | None = None,
                 metrics: dict[str, Any] | None = None, info: dict[str, Any] | None = None) -> Artifact:
        """Register a file or folder written under work_dir as an artifact."""
        sha, size = digest_and_size(self.work_dir / rel_path)
        return Artifact(name=name, stage=self.stage_id, format=fmt, precision=precision,
                        path=f"{self.final_rel}/{rel_path}", parent=parent, sha256=sha, size_bytes=size,
                        metrics=dict(metrics or {}), info=dict(info or {}))


C = TypeVar("C", bound=StageConfig)


class Stage(Generic[C]):
    """A recipe stage over its config type C: `self.config` is a C (`class PruneStage(Stage[PruneStageConfig])`)."""

    type: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    default_name: ClassVar[str]

    def __init__(self, config: C, index: int):
        self.config = config
        self.index = index

    @property
    def artifact_name(self) -> str:
        return self.config.name or self.default_name

    def problems(self, plan: PlanState, recipe: RecipeBase) -> list[str]:
        """Problems found before running (prefix each with `stages.<i>.<field>: `). Also updates `plan`."""
        return []

    def field(self, name: str) -> str:
        return f"stages.{self.index}.{name}"

    def run(self, ctx: StageContext) -> list[Artifact]:
        start = time.perf_counter()
        log.info("stage %d: %s", self.index, self.type)
        artifacts = self.execute(ctx)
        fill_artifact_macs(ctx, artifacts)  # every artifact gets info["macs"] for report.json
        ctx.metrics.setdefault("seconds", round(time.perf_counter() - start, 3))
        return artifacts

    def execute(self, ctx: StageContext) -> list[Artifact]:
        raise NotImplementedError


def fill_artifact_macs(ctx: StageContext, produced: list[Artifact]) -> None:
    """Give every produced artifact `info["macs"]`: copied from its parent when the structure is the same
    (ONNX exported or quantized from it), counted on the saved model for a PyTorch artifact otherwise.
    Never fails a stage: a model that cannot be counted keeps no `macs` (logged)."""
    from edgetl.models.base import load_model
    from edgetl.models.macs import model_macs

    known = {a.name: a for a in ctx.artifacts.values()}
    for art in produced:
        known[art.name] = art
    for art in produced:
        if "macs" in art.info:
            continue
        try:
            parent = known.get(art.parent) if art.parent else None
            if art.format != "pytorch" and parent is not None and "macs" in parent.info:
                art.info["macs"] = parent.info["macs"]
                continue
            if art.format == "pytorch":
                rel = art.path[len(ctx.final_rel) + 1:] if art.path.startswith(ctx.final_rel + "/") else art.path
                model = load_model(ctx.work_dir / rel)
            elif art.parent is None:
                model, _ = ctx.current_model()
            else:
                continue
            art.info["macs"], params = model_macs(model)
            art.info.setdefault("params", params)
        except Exception as exc:  # noqa: BLE001 - MACs are a report fact; never fail the stage over them
            log.debug("could not count MACs of %s: %s", art.name, exc)
