"""Check the whole recipe, then run its stages in order, reusing finished ones.

Each stage writes into `RUN/stages/<NN>-<type>-<key>/`, where key hashes (stage type + config + the key of
what came before + the sha256 of the artifacts before it, rooted in model + data + seed + the content of the
user's data and model files + the edgetl version). The folder is built under a temporary name, flushed to
disk and renamed when complete, so a killed run resumes at the first unfinished stage and a changed stage
reruns itself and everything after it, nothing before. A stage is reused only when its result.json reads
and its artifacts still hash to what was recorded; one process at a time writes a run folder (a file lock).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError, RecipeError, StageError
from edgetl.recipe.load import blame_overrides
from edgetl.recipe.schema import DATA_READING_FIELDS, RecipeBase
from edgetl.registry import STAGES
from edgetl.report.artifact import Artifact
from edgetl.runtime.files import digest_and_size, replace_dir, stable_hash, write_json_atomic
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)
AfterStage = Callable[[int, "dict[str, Artifact]"], None]  # (stage index, every artifact so far)
CACHE_VERSION = 1  # bump when stage outputs change meaning, so old caches are not reused


@dataclass
class StageRecord:
    index: int
    type: str
    id: str
    key: str
    dir: str
    status: str  # "ran" | "reused"
    seconds: float
    artifacts: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def build_stages(recipe: RecipeBase) -> list[Stage]:
    return [STAGES.get(cfg.type).load()(cfg, i) for i, cfg in enumerate(recipe.stages)]


def check_recipe(recipe: RecipeBase) -> list[str]:
    """Everything that can be checked before training: data and model present, extras installed,
    stage order (each stage finds the artifact it needs), artifact names unique."""
    from edgetl.data.datasets import TASKS, data_problems
    from edgetl.models.zoo import model_problems

    task = TASKS[recipe.data.name]
    problems = data_problems(recipe.data) + model_problems(recipe.model, task)
    plan = PlanState(task=task)
    names: dict[str, int] = {}
    for stage in build_stages(recipe):
        entry = STAGES.get(stage.type)
        missing = entry.missing()
        if missing:
            problems.append(f"{stage.field('type')}: {stage.type} needs {', '.join(missing)}: {entry.install_hint()}")
        problems += stage.problems(plan, recipe)
        name = stage.artifact_name
        if name in names:
            problems.append(f"{stage.field('name')}: artifact name {name!r} is already used by stages.{names[name]}; "
                            "give one of them a distinct `name:`")
        names[name] = stage.index
    return problems


def validate(recipe: RecipeBase, source: str = "recipe") -> None:
    problems = blame_overrides(check_recipe(recipe), recipe.overrides)  # name the --set behind a problem
    if problems:
        raise RecipeError(f"{source} has {len(problems)} problem(s)", problems=problems,
                          hint="fix the fields above and run `edgetl validate` again")


def root_key(recipe: RecipeBase, inputs: dict[str, Any] | None = None) -> str:
    """Key of what the first stage starts from: model, data and seed as configured, and `inputs`: the edgetl
    version and the content of the user's files (edgetl.pipeline.fingerprint)."""
    data = recipe.data.model_dump(mode="json", exclude=DATA_READING_FIELDS)  # same examples, same results
    return stable_hash({"v": CACHE_VERSION, "model": recipe.model.model_dump(mode="json"),
                        "data": data, "seed": recipe.seed, "inputs": inputs or {}})


def compress(recipe: RecipeBase, out_dir: Path, *, recipe_file: str | None = None, progress=None,
             stage_store: Path | None = None, after_stage: AfterStage | None = None) -> dict[str, Any]:
    """Run a recipe into out_dir; returns the report (also written as report.json / report.md). One run at a
    time per folder: a second one raises RunFolderBusyError naming the first. `stage_store`: a folder shared with
    other runs (edgetl/pipeline/store.py) whose finished stages this run copies instead of computing them.
    `after_stage(index, artifacts)`: called once each stage is kept (ran or reused) with every artifact so far;
    what it raises stops the run there, the finished stages staying reusable (a search prunes a hopeless trial)."""
    from edgetl.pipeline.lock import run_folder_lock

    validate(recipe, recipe_file or "recipe")
    out_dir = Path(out_dir).resolve()
    rank, world = _distributed()  # under torchrun: rank 0 alone writes; training stages run on every rank
    out_dir.mkdir(parents=True, exist_ok=True)
    if rank != 0:  # rank 0 holds the lock for the whole group
        return _run(recipe, out_dir, rank, world, recipe_file, progress, stage_store)
    with run_folder_lock(out_dir):
        remove_stale(out_dir)
        return _run(recipe, out_dir, rank, world, recipe_file, progress, stage_store, after_stage)


def remove_stale(out_dir: Path) -> None:
    """Scratch a killed run left behind: `.tmp-` stage folders and half-written files (called under the lock)."""
    # the names write_json_atomic (.report.json.tmp<pid>), report.md (.report.md.tmp) and the plot (.tmp-*) use
    half_written = re.compile(r"\..+\.tmp\d*|\.tmp-.+")
    stale = [*(out_dir / "stages").glob(".tmp-*"), *(p for p in out_dir.iterdir() if half_written.fullmatch(p.name))]
    for path in stale:
        log.info("removing %s, left by an interrupted run", path.relative_to(out_dir))
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _run(recipe: RecipeBase, out_dir: Path, rank: int, world: int, recipe_file: str | None,
         progress, stage_store: Path | None = None, after_stage: AfterStage | None = None) -> dict[str, Any]:
    from contextlib import nullcontext

    from edgetl.pipeline.fingerprint import HashCache, recipe_fingerprint, stage_fingerprint
    from edgetl.pipeline.select import resolve_auto
    from edgetl.pipeline.store import place, stage_lock
    from edgetl.report.build import write_reports

    stages_dir = out_dir / "stages"
    stages_dir.mkdir(exist_ok=True)
    # source: auto becomes the best-scoring candidate before any key is computed: the choice is in every key
    recipe, selection = resolve_auto(recipe, out_dir, rank=rank, world=world)
    data_loader = functools.cache(lambda: _load_data(recipe))
    source_loader = functools.cache(lambda: _load_source(recipe, data_loader))
    artifacts: dict[str, Artifact] = {}
    records: list[StageRecord] = []
    hashes = HashCache()
    key = root_key(recipe, recipe_fingerprint(recipe, hashes))
    hashes.save()
    started = time.perf_counter()
    for stage in build_stages(recipe):
        # a stage's key: what came before (by content: the artifacts it can read), its type and config
        key = stable_hash({"prev": key, "type": stage.type, "config": stage.config.model_dump(mode="json"),
                           "inputs": {name: a.sha256 for name, a in artifacts.items()},
                           **stage_fingerprint(stage.config, hashes)})
        hashes.save()
        stage_id = f"{stage.index:02d}-{stage.type}"
        dirname = f"{stage_id}-{key[:12]}"
        final = stages_dir / dirname
        result = _reusable(stage, final, key, out_dir)
        if world > 1:
            from edgetl.train.distributed import barrier

            barrier()  # every rank has looked before rank 0 can write this stage
        if result is not None:
            status = "reused"
            log.info("stage %d %s: reusing %s", stage.index, stage.type, final.relative_to(out_dir))
        elif rank != 0:
            result, status = _follow_rank0(stage, recipe, out_dir, stage_id, dirname, artifacts, data_loader,
                                           source_loader), "ran"
        else:
            shared = stage_store / "stages" / dirname if stage_store is not None else None
            with stage_lock(stage_store, dirname) if stage_store is not None else nullcontext():
                stored = _reusable(stage, shared, key, stage_store) if shared is not None else None
                if stored is not None:  # another run (a search trial) made this very stage: copy it
                    place(shared, final)
                    result, status = stored, "reused"
                    log.info("stage %d %s: copied from the stage store %s", stage.index, stage.type, shared)
                else:
                    work = stages_dir / f".tmp-{dirname}"
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir()
                    ctx = StageContext(recipe=recipe, run_dir=out_dir, stage_id=stage_id, work_dir=work,
                                       final_rel=f"stages/{dirname}", artifacts=dict(artifacts),
                                       data_loader=data_loader, source_loader=source_loader, progress=progress,
                                       records=list(records))
                    t0 = time.perf_counter()
                    try:
                        produced = stage.run(ctx)
                    except BaseException as exc:  # nothing of a failed stage is kept; the stages before it are
                        shutil.rmtree(work, ignore_errors=True)
                        err = _named(exc, stage)
                        if err is exc:
                            raise
                        raise err from exc
                    result = {
                        "index": stage.index, "type": stage.type, "id": stage_id, "key": key,
                        "config": stage.config.model_dump(mode="json"),
                        "artifacts": [a.to_dict() for a in produced],
                        "metrics": ctx.metrics, "seconds": round(time.perf_counter() - t0, 3),
                        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    }
                    write_json_atomic(work / "result.json", result)
                    replace_dir(work, final)  # files and folders are fsynced before the rename
                    status = "ran"
                    if world > 1:
                        from edgetl.train.distributed import barrier

                        barrier()
                    if shared is not None:
                        place(final, shared)
        for art in result["artifacts"]:
            artifacts[art["name"]] = Artifact.from_dict(art)
        records.append(StageRecord(stage.index, stage.type, stage_id, key, f"stages/{dirname}", status,
                                   result["seconds"], [a["name"] for a in result["artifacts"]], result["metrics"]))
        if after_stage is not None:
            after_stage(stage.index, dict(artifacts))
    total = time.perf_counter() - started
    if world > 1:  # rank 0 writes the reports; the others return what it wrote
        from edgetl.train.distributed import barrier

        report = write_reports(recipe, out_dir, artifacts, records, recipe_file=recipe_file,
                               total_seconds=total, selection=selection) if rank == 0 else None
        barrier()
        return report if report is not None else _read_result(out_dir / "report.json")
    return write_reports(recipe, out_dir, artifacts, records, recipe_file=recipe_file, total_seconds=total,
                         selection=selection)


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins torchrun's process group when WORLD_SIZE > 1."""
    from edgetl.train.distributed import env_world_size, maybe_init, rank_and_world

    if env_world_size() <= 1:
        return 0, 1
    maybe_init()
    return rank_and_world()


def _follow_rank0(stage: Stage, recipe: RecipeBase, out_dir: Path, stage_id: str, dirname: str,
                  artifacts: dict[str, Artifact], data_loader, source_loader) -> dict[str, Any]:
    """A rank other than 0: run the stage's training in a scratch folder when it trains on every rank
    (`Stage.distributed`), then wait for rank 0 and use what rank 0 wrote."""
    import tempfile

    from edgetl.train.distributed import barrier

    if getattr(stage, "distributed", False):
        scratch = Path(tempfile.mkdtemp(prefix=f"edgetl-rank-{stage_id}-"))
        try:
            ctx = StageContext(recipe=recipe, run_dir=out_dir, stage_id=stage_id, work_dir=scratch,
                               final_rel=f"stages/{dirname}", artifacts=dict(artifacts),
                               data_loader=data_loader, source_loader=source_loader, progress=None)
            stage.run(ctx)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    barrier()
    return _read_result(out_dir / "stages" / dirname / "result.json")


def _named(exc: BaseException, stage: Stage) -> BaseException:
    """The error to raise for a failed stage: a StageError that names the stage; user errors and interrupts
    as they are."""
    label = f"{stage.index} ({stage.type})"
    if isinstance(exc, StageError):
        exc.stage = exc.stage or label
        return exc
    if isinstance(exc, EdgetlError) or not isinstance(exc, Exception):
        return exc
    err = StageError(f"failed with {type(exc).__name__}: {exc}")
    err.stage = label
    return err


def _reusable(stage: Stage, final: Path, key: str, out_dir: Path) -> dict[str, Any] | None:
    """The stage's finished result when it can be reused: result.json readable and written for this key, and
    every artifact on disk with the size and sha256 it was written with. Else None, and the log says why."""
    result_file = final / "result.json"
    if not result_file.exists():
        return None
    where = f"stage {stage.index} {stage.type}"
    rel = result_file.relative_to(out_dir)
    try:
        result = _read_result(result_file)
        arts = [Artifact.from_dict(a) for a in result["artifacts"]]
        result["metrics"] = dict(result["metrics"])
        result["seconds"] = float(result["seconds"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: %s is unreadable (%s: %s); running the stage again", where, rel, type(exc).__name__, exc)
        return None
    if result.get("key") != key:
        log.warning("%s: %s was written for another stage key; running the stage again", where, rel)
        return None
    for art in arts:
        path = art.resolve(out_dir)
        if not path.exists():
            log.warning("%s: artifact %s is missing (%s); running the stage again", where, art.name, art.path)
            return None
        sha, size = digest_and_size(path)
        if (sha, size) != (art.sha256, art.size_bytes):
            log.warning("%s: artifact %s changed since it was written (%s: %d -> %d bytes, sha256 %s -> %s); "
                        "running the stage again", where, art.name, art.path, art.size_bytes, size,
                        art.sha256[:12], sha[:12])
            return None
    return result


def _read_result(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())


def _load_data(recipe: RecipeBase):
    from edgetl.data.datasets import load_data

    return load_data(recipe.data)


def _load_source(recipe: RecipeBase, data_loader):
    from edgetl.models.zoo import load_source

    data = data_loader()
    return load_source(recipe.model, data.task, data.label_names)
