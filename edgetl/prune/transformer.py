"""BERT-family specifics: which layers torch-pruning may touch (heads and FFN neurons, never the hidden
size), and keeping the attention modules and the saved Hugging Face config consistent with pruned shapes.

torch-pruning changes weight shapes only; transformers 5 reshapes with `attention_head_size` and -1 heads,
and edgetl's `save_model` records `num_attention_heads` / `all_head_size`, so those are set from the shapes.
BERT's config derives the head size from hidden_size / num_attention_heads, so per-layer head counts and FFN
widths are written as `edgetl_layer_heads` / `edgetl_layer_intermediate` (and `intermediate_size` when all
layers agree); the rebuild takes widths from the checkpoint's tensor shapes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from edgetl.errors import ModelError

log = logging.getLogger(__name__)


def hf_layers(module: nn.Module) -> list[nn.Module] | None:
    from edgetl.distill.losses import encoder_layers

    found = encoder_layers(module)
    if found is None:
        return None
    layers = list(found[1])
    if not all(hasattr(layer, "attention") and hasattr(layer.attention, "self")
               and hasattr(layer, "intermediate") and hasattr(layer, "output") for layer in layers):
        return None
    return layers


def bert_pruning_plan(module: nn.Module, *, heads: bool, ffn: bool) -> tuple[dict[nn.Module, int], list[nn.Module]]:
    """(num_heads map for torch-pruning, layers to ignore) so that only heads and FFN neurons are pruned."""
    layers = hf_layers(module)
    if layers is None:
        raise ModelError(
            f"{type(getattr(module, 'hf', module)).__name__} is not a BERT-family encoder (hf.<base>.encoder.layer "
            "with attention.self / intermediate / output); structured pruning of transformers supports BERT-style models",
        )
    hf = module.hf
    base = getattr(hf, hf.base_model_prefix)
    ignored: list[nn.Module] = [base.embeddings]
    for name in ("classifier", "score", "pre_classifier"):
        if isinstance(getattr(hf, name, None), nn.Module):
            ignored.append(getattr(hf, name))
    if getattr(base, "pooler", None) is not None:
        ignored.append(base.pooler)
    num_heads: dict[nn.Module, int] = {}
    for layer in layers:
        att = layer.attention.self
        # outputs back into the residual stream: pruning them would prune the hidden size
        ignored += [layer.attention.output.dense, layer.output.dense]
        if heads:
            num_heads.update({att.query: att.num_attention_heads, att.key: att.num_attention_heads,
                              att.value: att.num_attention_heads})
        else:
            ignored += [att.query, att.key, att.value]
        if not ffn:
            ignored.append(layer.intermediate.dense)
    return num_heads, ignored


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
