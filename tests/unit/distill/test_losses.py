"""KD loss terms: values a user relies on (mixture weights, masking, shape handling)."""

import pytest
import torch
import torch.nn.functional as F

from edgetl.distill.losses import (
    LogitKD,
    attention_kl,
    attention_probs,
    kd_kl,
    spatial_attention_loss,
)


class FixedTeacher:
    """Stands in for the teacher (not under test here): returns given logits."""

    def __init__(self, logits):
        self._logits = logits

    def logits(self, inputs):
        return self._logits


def test_kd_kl_matches_hinton_definition_and_is_zero_for_equal_logits():
    torch.manual_seed(0)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    T = 3.0
    manual = (F.softmax(t / T, -1) * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    assert kd_kl(s, t, T).item() == pytest.approx(manual.item(), rel=1e-5)
    assert kd_kl(t, t, T).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_logit_kd_plus_trainer_ce_is_the_alpha_mixture(alpha):
    torch.manual_seed(1)
    logits, teacher, labels = torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    term = LogitKD(FixedTeacher(teacher), temperature=2.0, alpha=alpha)
    total = F.cross_entropy(logits, labels) + term({}, labels, logits)  # what the Trainer computes
    expected = alpha * F.cross_entropy(logits, labels) + (1 - alpha) * kd_kl(logits, teacher, 2.0)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_attention_probs_are_distributions_that_ignore_padding():
    torch.manual_seed(2)
    q, k = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    p = attention_probs(q, k, head_size=4, mask=mask)
    assert p.shape == (2, 5, 5)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 5))
    assert p[0, :, 3:].max() < 1e-3  # padded keys get no attention
    assert attention_kl(p, p, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_kl(attention_probs(k, q, 4, mask), p, mask).item() > 0


def test_attention_probs_compare_across_head_counts():
    """A head-pruned student (2 heads) is compared with its teacher (4 heads) after averaging over heads."""
    q4, k4 = torch.randn(1, 6, 16), torch.randn(1, 6, 16)
    assert attention_probs(q4[..., :8], k4[..., :8], 4, None).shape == attention_probs(q4, k4, 4, None).shape


def test_spatial_attention_loss_zero_for_same_maps_and_handles_sizes():
    torch.manual_seed(3)
    f = torch.randn(2, 8, 6, 6)
    assert spatial_attention_loss(f, f).item() == pytest.approx(0.0, abs=1e-7)
    assert spatial_attention_loss(torch.randn(2, 3, 12, 12), f).item() > 0  # other channels and size
