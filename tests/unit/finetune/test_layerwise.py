"""Layer-wise learning rates, gradual unfreezing, the BatchNorm policy, augmentation, forgetting control."""

import numpy as np
import pytest
import torch

from edgetl.finetune.augment import make_augment
from edgetl.finetune.config import FinetuneConfig
from edgetl.finetune.layerwise import GradualUnfreezer, param_groups, train_mode
from edgetl.finetune.methods import run_method
from edgetl.models.arch import depth_groups, head_name


def cfg(**kw):
    base = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "max_steps": 3}
    return FinetuneConfig(**{**base, **kw})


def test_lr_decay_gives_each_depth_group_a_geometric_rate(tiny_bert):
    module = tiny_bert.module
    groups = depth_groups(module)
    assert groups.names[0] == "bottom" and groups.names[-1] == "top" and len(groups) == 4
    pg = param_groups(module, groups, 1e-3, decay=0.5, explicit={"embeddings": 1e-6})
    rate = {id(p): g["lr"] for g in pg for p in g["params"]}
    named = dict(module.named_parameters())
    assert rate[id(named["hf.classifier.weight"])] == pytest.approx(1e-3)
    assert rate[id(named["hf.bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(5e-4)
    assert rate[id(named["hf.bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(2.5e-4)
    assert rate[id(named["hf.bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-6)  # explicit wins
    assert sum(len(g["params"]) for g in pg) == len(named)


def test_gradual_unfreezing_trains_the_head_first_then_deeper_groups(tiny_cnn, fmnist):
    module = tiny_cnn.module
    groups = depth_groups(module)  # stem, block, dw, head
    unfreeze = GradualUnfreezer(module, groups, [0, 1, 2])
    unfreeze(0)
    assert {n for n, p in module.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    unfreeze(1)
    assert {n.split(".")[0] for n, p in module.named_parameters() if p.requires_grad} == {"head", "dw"}
    unfreeze(2)
    assert all(p.requires_grad for p in module.parameters())


def test_gradual_unfreezing_in_training_keeps_lower_groups_bit_identical_until_their_epoch(tiny_cnn, fmnist):
    module = tiny_cnn.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    run_method(cfg(epochs=2, max_steps=None, unfreeze=[0, 2, 2]), tiny_cnn, fmnist, seed=0)
    # the schedule never reaches epoch 2 in a 2-epoch run: everything but the head stays as it was
    after = module.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"head.weight", "head.bias"}


def test_batchnorm_freeze_keeps_source_statistics_and_update_changes_them(tiny_cnn, fmnist):
    stats = {k: v.clone() for k, v in tiny_cnn.module.state_dict().items() if "running_mean" in k}
    state = {k: v.clone() for k, v in tiny_cnn.module.state_dict().items()}
    run_method(cfg(batchnorm="freeze"), tiny_cnn, fmnist, seed=0)
    assert all(torch.equal(v, tiny_cnn.module.state_dict()[k]) for k, v in stats.items())
    tiny_cnn.module.load_state_dict(state)
    run_method(cfg(batchnorm="update"), tiny_cnn, fmnist, seed=0)
    assert not any(torch.equal(v, tiny_cnn.module.state_dict()[k]) for k, v in stats.items())


def test_train_mode_freeze_puts_only_batchnorm_in_eval(tiny_cnn):
    train_mode("freeze")(tiny_cnn.module)
    assert tiny_cnn.module.training and not tiny_cnn.module.stem[1].training


def test_augmentation_keeps_shape_and_dtype_changes_pixels_and_is_seeded(fmnist):
    aug = make_augment(["flip", "crop", "color_jitter"])
    x = fmnist.train.inputs[:16]
    a = aug(x, np.random.default_rng(0))
    b = aug(x, np.random.default_rng(0))
    assert a.shape == x.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, x)
    flip = make_augment(["flip"])(x, np.random.default_rng(1))
    flipped = [i for i in range(16) if not np.array_equal(flip[i], x[i])]
    assert flipped and all(np.array_equal(flip[i], x[i][:, ::-1]) for i in flipped)
    assert make_augment([]) is None


def _feature_drift(model, ref_feats, split):
    from edgetl.finetune.probe import head_features

    feats = head_features(model, model.module.get_submodule(head_name(model.module)), split)
    return float((feats - ref_feats).pow(2).mean())


@pytest.mark.parametrize("forgetting", [{"method": "ewc", "weight": 1e6, "fisher_samples": 32},
                                        {"method": "lwf", "weight": 100.0}])
def test_forgetting_control_keeps_the_source_features_closer(tiny_cnn, fmnist, forgetting):
    from edgetl.finetune.probe import head_features

    module = tiny_cnn.module
    state = {k: v.clone() for k, v in module.state_dict().items()}
    ref = head_features(tiny_cnn, module.get_submodule(head_name(module)), fmnist.eval)
    opts = {"lr": 5e-3, "epochs": 3, "batch_size": 16, "max_steps": None, "batchnorm": "freeze"}
    plain = run_method(cfg(**opts), tiny_cnn, fmnist, seed=0)
    free = _feature_drift(tiny_cnn, ref, fmnist.eval)
    module.load_state_dict(state)
    kept = run_method(cfg(**opts, forgetting=forgetting), tiny_cnn, fmnist, seed=0)
    held = _feature_drift(tiny_cnn, ref, fmnist.eval)
    assert kept.facts["forgetting"] == forgetting["method"] and "forgetting" not in plain.facts
    assert held < 0.5 * free, (held, free)
