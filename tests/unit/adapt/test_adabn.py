"""AdaBN changes BatchNorm statistics and nothing else, and sets them to the target data's statistics."""

import copy

import torch
from torch import nn

from edgetl.adapt.adabn import adabn
from edgetl.testing.tiny import TinyCNN


def _target_batches(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # three batches with different means: the between-batch spread is part of the target's variance
    return [torch.randn(16, 3, 8, 8, generator=g) * 2.0 + shift for shift in (2.0, 3.0, 4.0)]


def test_running_stats_become_the_pooled_target_statistics():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    batches = _target_batches()
    facts = adabn(model, batches)
    everything = torch.cat(batches)
    bn = model[0]
    assert torch.allclose(bn.running_mean, everything.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, everything.transpose(0, 1).reshape(3, -1).var(1), atol=1e-4)
    assert facts["batchnorm_layers"] == 2 and facts["examples"] == 48


def test_only_batchnorm_statistics_change_and_modes_are_restored():
    torch.manual_seed(0)
    model = TinyCNN(num_classes=4)
    model.train()
    model.head.eval()  # a mixed state, as a frozen part leaves it
    before = copy.deepcopy(model.state_dict())
    adabn(model, [{"pixel_values": b} for b in _target_batches()])
    after = model.state_dict()
    params = {n for n, _ in model.named_parameters()}
    assert all(torch.equal(before[n], after[n]) for n in params)
    stats = [n for n in after if n.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.equal(before[n], after[n]) for n in stats)
    assert model.training and not model.head.training and model.stem[1].training


def test_target_statistics_move_the_eval_outputs_towards_train_mode_ones():
    """After AdaBN the model in eval mode normalises target data as train mode (batch statistics) would."""
    torch.manual_seed(0)
    model = TinyCNN(num_classes=4).eval()
    batch = torch.randn(64, 3, 8, 8) * 2.0 + 3.0
    with torch.no_grad():
        reference = copy.deepcopy(model).train()(pixel_values=batch)
        stale = model(pixel_values=batch)
        adabn(model, [{"pixel_values": batch}])
        adapted = model(pixel_values=batch)
    assert (adapted - reference).abs().max() < 0.1 * (stale - reference).abs().max()
