"""EdgeModel: a torch module plus everything needed to feed it and rebuild it, and its on-disk format.

A saved model is a folder: `model.json` (how to rebuild the architecture, labels, preprocessing, structural
attributes changed by pruning), `model.safetensors` (weights; their shapes describe pruned widths), and
tokenizer files for text models. Never a pickled module.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgetl.errors import ModelError
from edgetl.runtime.paths import filename_problem, leaves
from edgetl.runtime.preprocess import Preprocessing, TextEncoder, encode_images

log = logging.getLogger(__name__)

MODEL_FORMAT = "edgetl-model"
MODEL_FORMAT_VERSION = 1
# Integer attributes that describe a module's width; pruning changes them, so they are saved and restored.
SHAPE_ATTRS = (
    "in_channels", "out_channels", "groups", "in_features", "out_features", "num_features", "normalized_shape",
    "num_attention_heads", "attention_head_size", "all_head_size", "num_heads", "head_dim", "embed_dim",
)


@dataclass
class EdgeModel:
    module: nn.Module  # forward(**inputs) -> logits
    task: str  # "image" | "text"
    preprocessing: Preprocessing
    label_names: list[str]
    builder: dict[str, Any]  # how to rebuild the architecture without weights (see models.zoo.build)
    source: str
    files: dict[str, Path] = field(default_factory=dict)  # extra files carried along (tokenizer, hf config)
    info: dict[str, Any] = field(default_factory=dict)  # free-form facts for reports (trainable params, ...)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def encoder(self):
        """A function raw inputs (images or texts) -> dict of numpy model inputs."""
        pre = self.preprocessing
        if pre.kind == "image":
            return lambda raw, **_: encode_images(raw, pre)
        tok = self.files.get("tokenizer.json")
        if tok is None:
            raise ModelError(f"text model {self.source} carries no tokenizer.json")
        return TextEncoder(tok, pre)

    def example_inputs(self, batch: int = 1) -> dict[str, torch.Tensor]:
        pre = self.preprocessing
        if pre.kind == "image":
            return {pre.input_names[0]: torch.randn(*pre.example_shape(batch))}
        length = int(pre.max_length or 128)
        out = {
            "input_ids": torch.randint(1000, 2000, (batch, length)),
            "attention_mask": torch.ones(batch, length, dtype=torch.long),
            "token_type_ids": torch.zeros(batch, length, dtype=torch.long),
        }
        return {k: out[k] for k in pre.input_names}

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

def to_torch(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}


def module_attrs(module: nn.Module) -> dict[str, dict[str, Any]]:
    attrs: dict[str, dict[str, Any]] = {}
    for name, m in module.named_modules():
        found = {}
        for a in SHAPE_ATTRS:
            v = m.__dict__.get(a)
            if isinstance(v, bool):
                continue
            if isinstance(v, int) or (isinstance(v, tuple) and all(isinstance(x, int) for x in v)):
                found[a] = list(v) if isinstance(v, tuple) else v
        if found:
            attrs[name] = found
    return attrs


def save_model(model: EdgeModel, folder: Path) -> None:
    from safetensors.torch import save_file

    for name in model.files:  # each is copied to folder / name: a name must not lead out of the folder
        if problem := filename_problem(name):
            raise ModelError(f"cannot save model {model.source} to {folder}: its extra file name {name!r} {problem}; "
                             "expected a plain file name (like tokenizer.json)")
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    for name, src in model.files.items():
        if Path(src).resolve() != (folder / name).resolve():
            shutil.copyfile(src, folder / name)
    meta = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "task": model.task,
        "source": model.source,
        "builder": model.builder,
        "labels": model.label_names,
        "preprocessing": model.preprocessing.to_dict(),
        "attrs": module_attrs(model.module),
        "files": sorted(model.files),
        "info": model.info,
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2))


def _resize_to_checkpoint(module: nn.Module, shapes: dict[str, list[int]], attrs: dict[str, dict[str, Any]]) -> None:
    """Give a freshly built module the widths of a (possibly pruned) checkpoint before loading weights."""
    for key, shape in shapes.items():
        owner_name, _, leaf = key.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        current = getattr(owner, leaf, None)
        if current is None or list(current.shape) == list(shape):
            continue
        if isinstance(current, nn.Parameter):
            setattr(owner, leaf, nn.Parameter(torch.empty(shape, dtype=current.dtype), requires_grad=current.requires_grad))
        else:
            owner.register_buffer(leaf, torch.empty(shape, dtype=current.dtype))
    for name, values in attrs.items():
        try:
            m = module.get_submodule(name)
        except AttributeError:
            continue
        for a, v in values.items():
            setattr(m, a, tuple(v) if isinstance(v, list) else v)


def _listed_files(folder: Path, names: Any) -> dict[str, Path]:
    """model.json `files`: plain names of files inside `folder`. A later stage copies each to its own folder
    under the same name, so one like `../../x` would write outside the run: refused before anything is read."""
    where = f"{folder / 'model.json'}: field `files`"
    hint = ("the folder was edited or not written by edgetl: save the model again, or remove the entry from "
            "model.json")
    if not isinstance(names, list):
        raise ModelError(f"{where} is a {type(names).__name__}, expected a list of file names", hint=hint)
    files = {}
    for name in names:
        problem = filename_problem(name)
        if problem is None and leaves(folder, folder / name):
            problem = "is a symlink that leads out of the folder"
        if problem:
            raise ModelError(f"{where} holds {name!r}, which {problem}; expected plain names of files inside "
                             f"{folder} (like tokenizer.json)", hint=hint)
        files[name] = folder / name
    return files


def load_model(folder: str | Path, module: nn.Module | None = None) -> EdgeModel:
    """The saved model in `folder`. `module`: a fresh instance of the architecture, needed for a folder saved
    from an nn.Module handed to the Python API (edgetl has no recipe to rebuild it); it is resized to the
    checkpoint's (e.g. pruned) widths before the weights load."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from edgetl.models.zoo import build

    folder = Path(folder)
    meta_path = folder / "model.json"
    if not meta_path.exists():
        raise ModelError(
            f"{folder} is not a saved edgetl model (no model.json)",
            hint="point model.source at a `model` folder of an earlier run, or use a zoo name or hf:<id>",
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"{meta_path} is not an edgetl model file (format={meta.get('format')!r})")
    files = _listed_files(folder, meta.get("files", []))
    if module is None:
        module = build(meta["builder"], files)
    weights = folder / "model.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    _resize_to_checkpoint(module, shapes, meta.get("attrs", {}))
    state = load_file(str(weights))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{weights} does not match its architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
    module.eval()
    return EdgeModel(
        module=module,
        task=meta["task"],
        preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
        label_names=list(meta["labels"]),
        builder=meta["builder"],
        source=meta.get("source", str(folder)),
        files=files,
        info=meta.get("info", {}),
    )
