"""The alignment losses against the papers' numbers, and each one closing a known gap between two Gaussians
when a small layer is trained with it."""

import numpy as np
import pytest
import torch
from torch import nn

from edgetl.adapt.losses import (
    DomainClassifier,
    coral_loss,
    dann_coefficient,
    dann_loss,
    grad_reverse,
    mmd_loss,
)


def test_coral_matches_the_papers_formula_on_the_reference_case():
    rs = np.random.RandomState(0)
    fs = torch.from_numpy(rs.randn(32, 8))
    ft = torch.from_numpy(2 * rs.randn(32, 8) + 1)
    assert float(coral_loss(fs, ft)) == pytest.approx(0.428269, abs=1e-6)  # ||Cs - Ct||_F^2 / (4 d^2)


def test_mmd_is_zero_for_one_sample_and_ignores_the_scale_of_the_features():
    x, y = torch.randn(64, 16), torch.randn(64, 16) + 1.5
    assert float(mmd_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    gap = float(mmd_loss(x, y))
    assert gap > 0.1
    # bandwidths follow the mean distance of the batch, so the loss does not depend on the feature scale
    assert float(mmd_loss(10 * x, 10 * y)) == pytest.approx(gap, rel=1e-4)


def test_gradient_reversal_flips_and_scales_the_gradient_only():
    x = torch.ones(3, requires_grad=True)
    y = grad_reverse(x, 0.25)
    assert torch.equal(y, x.detach())
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.25))


def test_dann_schedule_is_the_papers():
    got = [dann_coefficient(p) for p in (0, 0.1, 0.25, 0.5, 1)]
    assert got == pytest.approx([0, 0.462, 0.848, 0.987, 0.9999], abs=1e-3)


def _gap(s: torch.Tensor, t: torch.Tensor) -> float:
    """Distance between two Gaussians' first two moments."""
    cs, ct = torch.cov(s.T), torch.cov(t.T)
    return float((s.mean(0) - t.mean(0)).norm() + (cs - ct).norm())


@pytest.fixture
def one_thread():
    """Small matrices: on a loaded 2-core machine extra threads only add waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("method", ["coral", "mmd", "dann"])
def test_training_a_layer_with_the_loss_closes_the_gap_between_shifted_gaussians(method, one_thread):
    torch.manual_seed(0)
    d = 4
    source = torch.randn(2048, d)
    mix = torch.eye(d) + 0.5 * torch.randn(d, d)
    target = torch.randn(2048, d) @ mix + torch.tensor([2.0, -1.0, 0.5, 1.0])  # shifted, scaled and rotated
    layer = nn.Linear(d, d)  # maps target features; starts as the identity
    with torch.no_grad():
        layer.weight.copy_(torch.eye(d))
        layer.bias.zero_()
    classifier = DomainClassifier(d, hidden=64, dropout=0.0)
    # the adversarial game needs the feature side slower than the domain classifier
    opt = torch.optim.Adam([{"params": layer.parameters(), "lr": 0.002 if method == "dann" else 0.02},
                            {"params": classifier.parameters(), "lr": 0.01}])
    steps = 400
    for step in range(steps):
        i = torch.randint(0, 2048, (128,))
        s, t = source[i], layer(target[i])
        if method == "coral":
            loss = coral_loss(s, t)
        elif method == "mmd":
            loss = mmd_loss(s, t)
        else:
            loss, _ = dann_loss(classifier, s, t, dann_coefficient(step / steps))
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = layer(target).detach()
    if method == "coral":  # second-order statistics only: the covariance gap is what it closes
        before, after = _cov_gap(source, target), _cov_gap(source, moved)
    else:
        before, after = _gap(source, target), _gap(source, moved)
    assert after < 0.3 * before, (before, after)


def _cov_gap(s: torch.Tensor, t: torch.Tensor) -> float:
    return float((torch.cov(s.T) - torch.cov(t.T)).norm())
