"""KD wired into the shared Trainer: the `kd:` block of a recipe -> teacher + loss terms + projector params.

Any training stage can use it:

    kd = build_kd(cfg.kd, teacher_model, student_model, label_smoothing=settings.label_smoothing)
    Trainer(student, train, eval, settings, extra_losses=kd.terms, param_groups=kd.param_groups(student))
    ...
    kd.close()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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


def logit_cache_path(ctx: StageContext, cfg: KDConfig | None, teacher: str) -> Path | None:
    """Where `kd.cache` keeps the teacher's logits: keyed by the teacher (artifact sha256, else its name or
    folder), the data and the model settings, so another teacher or dataset never reads stale logits."""
    from edgetl.pipeline.artifacts import stable_hash

    if cfg is None or not cfg.cache:
        return None
    art = ctx.artifacts.get(teacher)
    key = stable_hash({"teacher": art.sha256 if art else teacher, "data": ctx.recipe.data.model_dump(mode="json"),
                       "model": ctx.recipe.model.model_dump(mode="json")})[:16]
    return ctx.run_dir / "cache" / f"teacher-logits-{key}.npz"


@dataclass
class KDSetup:
    teacher: Any
    terms: list[Any]
    modules: list[Any] = field(default_factory=list)  # hold projectors and hooks

    def projector_params(self) -> list[Any]:
        """Parameters the KD terms train besides the student (feature-KD projectors)."""
        return [p for m in self.modules if hasattr(m, "projectors") for p in m.projectors.parameters()]

    def param_groups(self, student: EdgeModel) -> list[dict[str, Any]]:
        groups = [{"params": [p for p in student.module.parameters() if p.requires_grad]}]
        extra = self.projector_params()
        if extra:
            groups.append({"params": extra})
        return groups

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"teacher_forward_passes": self.teacher.forward_passes}
        if self.teacher.cache is not None:
            out.update({"cache_hits": self.teacher.cache.hits, "cache_misses": self.teacher.cache.misses})
        return out

    def close(self) -> None:
        for m in self.modules:
            m.remove()
        self.teacher.close()


def build_kd(cfg: KDConfig, teacher_model: EdgeModel, student: EdgeModel, *, label_smoothing: float = 0.0,
             cache_path: Path | None = None, kept_layers: list[int] | None = None, field_path: str = "kd",
             task_loss: Any = None) -> KDSetup:
    from edgetl.distill.losses import AttentionTransfer, FeatureKD, LogitKD
    from edgetl.distill.teacher import LogitCache, Teacher

    cache = LogitCache(cache_path) if cfg.cache else None
    teacher = Teacher(teacher_model, student, cache)
    setup = KDSetup(teacher, [])
    try:
        if cfg.alpha < 1.0:
            setup.terms.append(LogitKD(teacher, cfg.temperature, cfg.alpha, label_smoothing, task_loss))
        if cfg.features:
            feat = FeatureKD(student.module, teacher, cfg.features, f"{field_path}.features")
            feat.build(student.module, student.example_inputs(batch=2))
            setup.terms.append(feat)
            setup.modules.append(feat)
        if cfg.attention:
            kept = kept_layers if kept_layers is not None else student.info.get("kept_layers")
            att = AttentionTransfer(student.module, teacher, cfg.attention, kept_layers=kept,
                                    field=f"{field_path}.attention")
            setup.terms.append(att)
            setup.modules.append(att)
    except Exception:
        setup.close()
        raise
    return setup


def train_with_kd(model: EdgeModel, data: Any, settings: Any, kd_cfg: KDConfig | None, teacher: EdgeModel | None, *,
                  progress: Any = None, description: str = "train", cache_path: Path | None = None,
                  field_path: str = "kd") -> tuple[Any, dict[str, Any]]:
    """Train `model` with the shared Trainer, plus KD terms when `kd_cfg` and a teacher are given."""
    from edgetl.train.loop import Trainer

    for p in model.module.parameters():
        p.requires_grad_(True)
    if kd_cfg is None or teacher is None:
        result = Trainer(model, data.train, data.eval, settings, progress=progress, description=description).fit()
        return result, {"kd": False}
    kd = build_kd(kd_cfg, teacher, model, label_smoothing=settings.label_smoothing, cache_path=cache_path,
                  field_path=field_path, task_loss=settings.loss)
    try:
        trainer = Trainer(model, data.train, data.eval, settings, extra_losses=kd.terms,
                          param_groups=kd.param_groups(model), progress=progress, description=description)
        result = trainer.fit()
    finally:
        kd.close()
    return result, {"kd": True, **kd.stats()}
