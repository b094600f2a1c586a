"""KD wired into the shared Trainer: a `kd:` config + a teacher model -> loss terms + projector params. (The
recipe side, a teacher named by artifact and the logit cache under the run, is edgetl/stages/kd.py.)

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

if TYPE_CHECKING:
    from edgetl.distill.config import KDConfig
    from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)


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
