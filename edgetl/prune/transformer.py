"""BERT-family specifics of structured pruning: which layers torch-pruning may touch (heads and FFN neurons,
never the hidden size). Keeping the attention modules and the saved Hugging Face config consistent with the
pruned shapes afterwards is `edgetl.models.encoder`.
"""

from __future__ import annotations

from torch import nn

from edgetl.errors import ModelError
from edgetl.models.encoder import hf_layers


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
