"""The recipe side of a stage's `kd:` block: static checks of `kd.teacher`, the teacher an artifact name or a
model folder stands for, and where `kd.cache` keeps teacher logits under the run. The distillation itself is
edgetl/distill/ (build_kd, train_with_kd, edgetl.distill)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetl.errors import RecipeError

if TYPE_CHECKING:
    from edgetl.distill.config import KDConfig
    from edgetl.models.base import EdgeModel
    from edgetl.stages.base import StageContext

log = logging.getLogger(__name__)


def earlier_artifact_names(recipe: Any, index: int) -> list[tuple[str, str]]:
    """(artifact name, stage type) of the stages before `index`, for static checks of `kd.teacher`."""
    from edgetl.registry import STAGES

    out = []
    for cfg in recipe.stages[:index]:
        try:
            default = STAGES.get(cfg.type).load().default_name
        except Exception:  # noqa: BLE001 - an unknown stage is reported elsewhere
            continue
        out.append((cfg.name or default, cfg.type))
    return out


def teacher_problems(teacher: str | None, recipe: Any, index: int, field_path: str) -> list[str]:
    if teacher is None:
        return []
    names = [n for n, _t in earlier_artifact_names(recipe, index)]
    if teacher in names:
        return []
    path = Path(teacher)
    if path.is_dir() and (path / "model.json").exists():
        return []
    return [f"{field_path}: {teacher!r} is neither the name of an earlier artifact ({', '.join(names) or 'none'}) "
            "nor a saved edgetl model folder; name an earlier stage's artifact (e.g. finetuned) or a model folder"]


def kd_problems(kd: KDConfig, recipe: Any, index: int, field_path: str, task: str, *,
                default_from_earlier: bool) -> list[str]:
    """Static checks of a stage's `kd:` block. `default_from_earlier`: without `kd.teacher` the stage takes an
    earlier stage's PyTorch model (finetune, distill), so one must exist; prune defaults to its own input."""
    problems = teacher_problems(kd.teacher, recipe, index, f"{field_path}.teacher")
    if default_from_earlier and kd.teacher is None:
        models = [n for n, t in earlier_artifact_names(recipe, index) if t not in ("export", "quantize", "benchmark")]
        if not models:
            problems.append(f"{field_path}.teacher: no earlier stage gives a teacher (a PyTorch model): put a "
                            "`finetune` stage before this one, or set kd.teacher to a saved edgetl model folder "
                            "fine-tuned on the same labels")
    if kd.attention and task == "image" and not kd.attention.layers:
        problems.append(f"{field_path}.attention.layers: attention transfer on an image model needs layer pairs, "
                        "e.g. [{student: features.13, teacher: features.13}]")
    return problems


def load_teacher(ctx: StageContext, teacher: str | None, default: Any = None,
                 default_name: str = "(model before this stage)") -> tuple[EdgeModel, str]:
    """The teacher named by `kd.teacher` (artifact name or folder), else `default` (an EdgeModel or a
    callable returning one), else the newest `finetune` artifact, else the newest PyTorch artifact."""
    from edgetl.models.base import load_model

    if teacher:
        art = ctx.artifacts.get(teacher)
        if art is not None:
            if art.format != "pytorch":
                raise RecipeError(f"kd.teacher: artifact {teacher!r} is {art.format}; a teacher must be a PyTorch model")
            return load_model(ctx.path_of(art)), teacher
        path = Path(teacher)
        if (path / "model.json").exists():
            return load_model(path), str(path)
        raise RecipeError(f"kd.teacher: no artifact or model folder named {teacher!r}",
                          hint=f"earlier artifacts: {', '.join(ctx.artifacts) or 'none'}")
    if default is not None:
        return (default() if callable(default) else default), default_name
    arts = [a for a in ctx.artifacts.values() if a.format == "pytorch"]
    finetuned = [a for a in arts if a.stage.endswith("-finetune")]
    pick = (finetuned or arts or [None])[-1]
    if pick is None:
        raise RecipeError("kd.teacher: no earlier PyTorch model to use as teacher",
                          hint="put a `finetune` stage before, or set kd.teacher to a saved model folder")
    return load_model(ctx.path_of(pick)), pick.name


def logit_cache_path(ctx: StageContext, cfg: KDConfig | None, teacher: str, student: EdgeModel) -> Path | None:
    """The one file where `kd.cache` keeps teacher logits under the run (None when `kd.cache` is off).

    The file holds raw teacher logits per example, keyed by a hash of the student's encoded inputs. So its name
    hashes what maps those inputs to other logits: the teacher (an earlier artifact's sha256, a model folder's
    content hash, else the recipe's model, e.g. prune's default teacher) and the student's preprocessing (the
    same tensor is other pixels under another normalisation); plus the data, so datasets keep separate files.
    The KD loss settings (temperature, alpha, features) act after the cache and are not part of the name."""
    from edgetl.runtime.files import digest_and_size, stable_hash

    if cfg is None or not cfg.cache:
        return None
    art = ctx.artifacts.get(teacher)
    if art is not None:
        ident: Any = art.sha256
    elif teacher and (Path(teacher) / "model.json").exists():
        ident = digest_and_size(Path(teacher))[0]
    else:
        ident = {"name": teacher, "model": ctx.recipe.model.model_dump(mode="json")}
    key = stable_hash({"teacher": ident, "data": ctx.recipe.data.model_dump(mode="json"),
                       "student_preprocessing": student.preprocessing.to_dict()})[:16]
    return ctx.run_dir / "cache" / f"teacher-logits-{key}.npz"
