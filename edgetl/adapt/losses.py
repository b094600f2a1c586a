"""Domain discrepancy losses on feature tensors (N, D): small enough to check against the papers' formulas."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _covariance(x: torch.Tensor) -> torch.Tensor:
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / max(x.shape[0] - 1, 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL (Sun & Saenko, ECCV-W 2016): ||C_s - C_t||_F^2 / (4 d^2), C the unbiased feature covariance.
    The batch sizes may differ."""
    d = source.shape[1]
    diff = _covariance(source.float()) - _covariance(target.float())
    return (diff * diff).sum() / (4.0 * d * d)


def mmd_loss(source: torch.Tensor, target: torch.Tensor, kernels: int = 5, base: float = 2.0) -> torch.Tensor:
    """Squared multi-kernel MMD of DAN (Long et al., ICML 2015): the sum of `kernels` Gaussian kernels
    exp(-g_u ||x - y||^2) with g_u = g_0 * base^(u - kernels // 2), g_0 = 1 / the mean squared distance of the
    joint batch (the official mmd_layer's bandwidths; held constant in the gradient, as there). The biased
    full-batch estimate E k(s,s') + E k(t,t') - 2 E k(s,t): quadratic in the batch, which is small here, and
    never negative, unlike the linear-time estimator."""
    x = torch.cat([source, target]).float()
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    n = x.shape[0]
    mean_d2 = d2.detach().sum() / max(n * (n - 1), 1)
    g0 = 1.0 / mean_d2.clamp_min(1e-12)
    k = torch.zeros_like(d2)
    for u in range(kernels):
        k = k + torch.exp(-d2 * (g0 * base ** (u - kernels // 2)))
    ns = source.shape[0]
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2.0 * k[:ns, ns:].mean()


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by -coefficient on the way back (Ganin & Lempitsky)."""
    return _GradientReversal.apply(x, coefficient)


def dann_coefficient(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule of the reversed gradient, 2 / (1 + exp(-gamma p)) - 1 for training progress p in [0, 1]:
    0 at the start, when the domain classifier still says nothing useful, close to 1 from mid-training on."""
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DomainClassifier(nn.Module):
    """Tells source (0) from target (1) features. Ends in one logit for BCE-with-logits."""

    def __init__(self, features: int, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def dann_loss(classifier: nn.Module, source: torch.Tensor, target: torch.Tensor, coefficient: float
              ) -> tuple[torch.Tensor, float]:
    """(domain BCE, domain accuracy). The classifier learns to tell the domains apart; through the gradient
    reversal the features learn, scaled by `coefficient`, to make them indistinguishable."""
    feats = grad_reverse(torch.cat([source, target]).float(), coefficient)
    logits = classifier(feats)
    labels = torch.cat([logits.new_zeros(source.shape[0]), logits.new_ones(target.shape[0])])
    accuracy = float(((logits.detach() > 0).float() == labels).float().mean())
    return F.binary_cross_entropy_with_logits(logits, labels), accuracy
