"""BERT-family encoder structure of a model wrapped by edgetl (`hf.<base>.encoder.layer`): its layer list,
and keeping the attention modules and the saved Hugging Face config consistent with pruned shapes or dropped
layers (used by structured pruning and by distillation students).

torch-pruning changes weight shapes only; transformers 5 reshapes with `attention_head_size` and -1 heads,
and edgetl's `save_model` records `num_attention_heads` / `all_head_size`, so those are set from the shapes.
BERT's config derives the head size from hidden_size / num_attention_heads, so per-layer head counts and FFN
widths are written as `edgetl_layer_heads` / `edgetl_layer_intermediate` (and `intermediate_size` when all
layers agree); the rebuild takes widths from the checkpoint's tensor shapes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from edgetl.errors import ModelError


def encoder_layers(module: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The transformer layer list of a BERT-family model wrapped by edgetl (`hf.<base>.encoder.layer`)."""
    hf = getattr(module, "hf", None)
    if hf is None:
        return None
    prefix = getattr(hf, "base_model_prefix", "")
    base = getattr(hf, prefix, None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if isinstance(layers, nn.ModuleList):
        return f"hf.{prefix}.encoder.layer", layers
    return None


def hf_layers(module: nn.Module) -> list[nn.Module] | None:
    found = encoder_layers(module)
    if found is None:
        return None
    layers = list(found[1])
    if not all(hasattr(layer, "attention") and hasattr(layer.attention, "self")
               and hasattr(layer, "intermediate") and hasattr(layer, "output") for layer in layers):
        return None
    return layers


def fix_attention_attrs(module: nn.Module) -> list[dict[str, int]]:
    """Set head counts from the pruned shapes; returns per-layer heads and FFN width."""
    out = []
    for layer in hf_layers(module) or []:
        att = layer.attention.self
        width = att.query.out_features
        if width % att.attention_head_size:
            raise ModelError(f"pruned attention width {width} is not a multiple of head size {att.attention_head_size}")
        att.num_attention_heads = width // att.attention_head_size
        att.all_head_size = width
        out.append({"heads": att.num_attention_heads, "intermediate": layer.intermediate.dense.out_features})
    return out


def sync_hf_config(module: nn.Module, files: dict[str, Path]) -> dict[str, Path]:
    """Write the HF config of the (pruned or layer-dropped) model next to a fresh temp folder and return
    the updated `files` map, so the saved `hf_config.json` matches the module."""
    hf = getattr(module, "hf", None)
    if hf is None or "hf_config.json" not in files:
        return files
    config = hf.config
    layers = hf_layers(module)
    if layers is not None:
        config.num_hidden_layers = len(layers)
        shapes = fix_attention_attrs(module)
        heads = [s["heads"] for s in shapes]
        inter = [s["intermediate"] for s in shapes]
        if len(set(inter)) == 1:
            config.intermediate_size = inter[0]
        original_heads = int(config.num_attention_heads)
        if heads and heads != [original_heads] * len(heads):
            config.edgetl_layer_heads = heads
        elif hasattr(config, "edgetl_layer_heads"):
            config.edgetl_layer_heads = heads
        if len(set(inter)) > 1 or hasattr(config, "edgetl_layer_intermediate"):
            config.edgetl_layer_intermediate = inter
    folder = Path(tempfile.mkdtemp(prefix="edgetl-hfcfg-"))
    path = folder / "hf_config.json"
    path.write_text(config.to_json_string())
    new_files = dict(files)
    new_files["hf_config.json"] = path
    return new_files


def layer_summary(module: nn.Module) -> dict[str, Any]:
    layers = hf_layers(module)
    if layers is None:
        return {}
    return {"layers": len(layers), "heads": [la.attention.self.query.out_features // la.attention.self.attention_head_size
                                             for la in layers],
            "intermediate": [la.intermediate.dense.out_features for la in layers]}
