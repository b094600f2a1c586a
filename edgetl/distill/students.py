"""Students: the teacher with transformer layers dropped (DistilBERT-style, initialised from the teacher),
or another zoo model."""

from __future__ import annotations

import copy
import logging

from torch import nn

from edgetl.errors import RecipeError
from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)


def drop_layers(teacher: EdgeModel, keep: list[int], field: str = "keep_layers") -> EdgeModel:
    """A copy of `teacher` that keeps only the encoder layers `keep` (in that order); the HF config's
    num_hidden_layers and the carried hf_config.json follow, so the student saves and reloads as itself."""
    from edgetl.models.encoder import encoder_layers, sync_hf_config

    found = encoder_layers(teacher.module)
    if found is None:
        raise RecipeError(f"{field}: layer dropping needs a BERT-family transformer; {teacher.source} is not one",
                          hint="use `student_model` for image models")
    n = len(found[1])
    bad = [i for i in keep if i >= n]
    if bad:
        raise RecipeError(f"{field}: layers {bad} do not exist; the teacher has {n} layers (0..{n - 1})")
    module = copy.deepcopy(teacher.module)
    hf = module.hf
    base = getattr(hf, hf.base_model_prefix)
    old = base.encoder.layer
    base.encoder.layer = nn.ModuleList([old[i] for i in keep])
    for new_idx, layer in enumerate(base.encoder.layer):
        for m in layer.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_idx
    hf.config.num_hidden_layers = len(keep)
    for p in module.parameters():
        p.requires_grad_(True)
    files = sync_hf_config(module, teacher.files)
    info = {"kept_layers": list(keep), "teacher_layers": n}
    return EdgeModel(module, teacher.task, copy.deepcopy(teacher.preprocessing), list(teacher.label_names),
                     dict(teacher.builder), f"{teacher.source} (layers {keep})", files, info)
