"""Structured pruning of the tiny CNN and tiny BERT: widths aligned, MACs down, modules consistent."""

import pytest
import torch
from torch import nn

from edgetl.models.encoder import hf_layers, layer_summary
from edgetl.models.macs import model_macs
from edgetl.prune.structured import PruneError, StructuredPruner, layer_widths


def conv_widths(module):
    return {n: m.out_channels for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "taylor"])
def test_cnn_channels_pruned_aligned_and_macs_drop(tiny_cnn, importance):
    macs0, params0 = model_macs(tiny_cnn)
    before = conv_widths(tiny_cnn.module)

    def grads():
        x = tiny_cnn.example_inputs(batch=4)
        nn.functional.cross_entropy(tiny_cnn.module(**x), torch.tensor([0, 1, 2, 3])).backward()

    pruner = StructuredPruner(tiny_cnn, importance=importance, pruning_ratio=0.5, round_to=8, protect=False,
                              gradient_fn=grads if importance == "taylor" else None)
    pruner.step()

    after = conv_widths(tiny_cnn.module)
    macs1, params1 = model_macs(tiny_cnn)
    assert macs1 < 0.5 * macs0 and params1 < params0
    assert all(w % 8 == 0 for w in after.values()), after
    assert any(after[n] < before[n] for n in before)
    assert tiny_cnn.module.head.out_features == 10  # the classifier head keeps its classes
    assert tiny_cnn.module(**tiny_cnn.example_inputs(batch=2)).shape == (2, 10)


def test_global_scope_ranks_across_layers(tiny_cnn):
    pruner = StructuredPruner(tiny_cnn, importance="l2", global_pruning=True, pruning_ratio=0.4, round_to=None,
                              protect=False)
    pruner.step()
    widths = layer_widths(tiny_cnn.module)
    assert widths["head"] == 10
    assert model_macs(tiny_cnn)[0] > 0


def test_frozen_parameters_are_an_error_not_a_silent_no_op(tiny_cnn):
    tiny_cnn.module.requires_grad_(False)  # what peft's merge_and_unload() leaves behind
    with pytest.raises(PruneError, match="do not require grad"):
        StructuredPruner(tiny_cnn, pruning_ratio=0.5)


def test_unknown_ignored_layer_names_the_field(tiny_cnn):
    from edgetl.errors import RecipeError

    with pytest.raises(RecipeError, match="ignored_layers: the model has no module 'nope'"):
        StructuredPruner(tiny_cnn, pruning_ratio=0.5, ignored=["nope"])


def test_bert_heads_and_ffn_iterative_steps_follow_initial_counts(tiny_bert):
    macs0, _ = model_macs(tiny_bert)
    hidden0 = tiny_bert.module.hf.config.hidden_size
    pruner = StructuredPruner(tiny_bert, pruning_ratio=0.5, steps=2, round_to=8)
    pruner.step()
    assert layer_summary(tiny_bert.module)["heads"] == [3, 3]
    pruner.step()

    summary = layer_summary(tiny_bert.module)
    assert summary["heads"] == [2, 2]  # 4 heads, half removed over two steps (not 4 -> 3 -> 1)
    assert summary["intermediate"] == [64, 64]
    for layer in hf_layers(tiny_bert.module):
        att = layer.attention.self
        assert att.num_attention_heads == 2
        assert att.all_head_size == att.query.out_features == att.num_attention_heads * att.attention_head_size
        assert layer.output.dense.out_features == hidden0  # the hidden size is never pruned
    assert model_macs(tiny_bert)[0] < 0.6 * macs0
    out = tiny_bert.module(**tiny_bert.example_inputs(batch=2))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_bert_heads_only(tiny_bert):
    pruner = StructuredPruner(tiny_bert, pruning_ratio=0.5, ffn=False)
    pruner.step()
    summary = layer_summary(tiny_bert.module)
    assert summary["heads"] == [2, 2] and summary["intermediate"] == [128, 128]


def test_batchnorm_recalibration_matches_the_pruned_activations(tiny_cnn):
    import numpy as np

    from edgetl.data.datasets import Split
    from edgetl.models.base import to_torch
    from edgetl.prune.structured import recalibrate_batchnorm

    StructuredPruner(tiny_cnn, pruning_ratio=0.5, round_to=8, protect=False).step()
    images = np.random.default_rng(0).integers(0, 255, (16, 28, 28), dtype=np.uint8)
    split = Split(images, np.zeros(16, dtype=np.int64))
    bn = tiny_cnn.module.stem[1]
    stale = bn.running_mean.clone()

    assert recalibrate_batchnorm(tiny_cnn, split, batches=1, batch_size=16) == 5
    with torch.no_grad():
        conv_out = tiny_cnn.module.stem[0](to_torch(tiny_cnn.encoder()(images))["pixel_values"])
    torch.testing.assert_close(bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(bn.running_mean, stale)
    assert bn.momentum == 0.1 and not tiny_cnn.module.training


def test_ignored_layers_take_globs(tiny_cnn):
    from edgetl.errors import RecipeError

    StructuredPruner(tiny_cnn, pruning_ratio=0.5, round_to=8, ignored=["d?.3"], protect=False).step()
    widths = layer_widths(tiny_cnn.module)
    assert widths["dw.3"] == 32 and widths["stem.0"] == 8  # the glob's match kept, the rest pruned
    with pytest.raises(RecipeError, match="no module 'zz.*'"):
        StructuredPruner(tiny_cnn, pruning_ratio=0.5, ignored=["zz.*"])


@pytest.mark.parametrize("source, stem, projections", [
    ("mobilenet_v2", "features.0.0", {"features.1.conv.1"} | {f"features.{i}.conv.2" for i in range(2, 18)}),
    ("efficientnet_lite0", "net._conv_stem", {f"net._blocks.{i}._project_conv" for i in range(16)}),
])
def test_protect_auto_finds_the_stem_and_inverted_residual_projections(source, stem, projections):
    from edgetl.models.zoo import load_source
    from edgetl.prune.protect import protected_layers
    from edgetl.recipe.schema import ModelConfig

    model = load_source(ModelConfig(source=source, pretrained=False, input_size=32), "image", ["a", "b"])

    found = protected_layers(model.module, model.example_inputs(batch=1))

    assert {n for n, why in found.items() if why == "stem"} == {stem}
    assert {n for n, why in found.items() if why == "projection"} == projections


def test_protected_layers_keep_their_width_and_the_rest_is_pruned(tiny_cnn):
    before = conv_widths(tiny_cnn.module)
    pruner = StructuredPruner(tiny_cnn, pruning_ratio=0.5, round_to=None)

    pruner.step()

    after = conv_widths(tiny_cnn.module)
    assert set(pruner.protected) == {"stem.0", "dw.3"}
    assert after["stem.0"] == before["stem.0"] and after["dw.3"] == before["dw.3"]
    assert after["block.0"] < before["block.0"]
