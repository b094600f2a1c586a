"""Activation range calibration for the fake-quantized PT2E graph: `max`, `percentile`, `entropy`, `mse`.

Ranges are symmetric (TensorRT's rule), so each method works on the histogram of |x| at every activation
fake-quant point, collected with quantization switched off (the float network's activations), the way
TensorRT's and Model Optimizer's calibrators do. After calibration the ranges are frozen: QAT trains the
weights against fixed activation grids, and the same grids are exported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
BINS = 2048


def fake_quants(gm: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """(activation fake-quants, weight fake-quants) of a prepared graph, by module name."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

    acts, weights = {}, {}
    for name, m in gm.named_modules():
        if isinstance(m, FakeQuantizeBase):
            (weights if getattr(m, "is_per_channel", False) else acts)[name] = m
    return acts, weights


def set_enabled(fqs: Iterable[Any], *, fake_quant: bool | None = None, observer: bool | None = None) -> None:
    for fq in fqs:
        if fake_quant is not None:
            fq.fake_quant_enabled[0] = int(fake_quant)
        if observer is not None:
            fq.observer_enabled[0] = int(observer)


def amax_from_histogram(hist: np.ndarray, edges: np.ndarray, method: str, percentile: float = 99.99) -> float:
    """The clipping value for a symmetric int8 grid from a histogram of |x| over [0, max]."""
    hist = hist.astype(np.float64)
    total = hist.sum()
    top = float(edges[-1])
    if total <= 0 or top <= 0:
        return max(top, 1e-8)
    if method == "percentile":
        cdf = np.cumsum(hist) / total
        idx = int(np.searchsorted(cdf, percentile / 100.0))
        return float(edges[min(idx + 1, len(edges) - 1)])
    if method == "mse":
        return _amax_mse(hist, edges)
    if method == "entropy":
        return _amax_entropy(hist, edges)
    return top


def _amax_mse(hist: np.ndarray, edges: np.ndarray) -> float:
    centers = (edges[:-1] + edges[1:]) / 2
    best, best_amax = np.inf, float(edges[-1])
    for stop in range(128, len(edges), 16):
        amax = float(edges[stop])
        scale = amax / 127.0
        q = np.clip(np.round(centers / scale), 0, 127) * scale
        err = float((hist * (centers - q) ** 2).sum())
        if err < best:
            best, best_amax = err, amax
    return best_amax


def _amax_entropy(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """TensorRT's entropy calibration: the clip bin whose 128-level quantized distribution is closest (KL)
    to the clipped reference distribution. The zero bin takes its neighbour's count first, as TensorRT's and
    pytorch-quantization's calibrators do: after a ReLU most values are exactly 0, and that spike otherwise
    dominates the divergence and picks the smallest clip tried (numbers: benchmarks/results/design-notes.md)."""
    hist = hist.copy()
    if len(hist) > 1:
        hist[0] = hist[1]
    best, best_stop = np.inf, len(hist)
    for stop in range(levels, len(hist) + 1, 16):
        ref = hist[:stop].copy()
        ref[stop - 1] += hist[stop:].sum()  # the reference keeps the clipped mass in its last bin ...
        sliced = hist[:stop]  # ... the quantized candidate is built without it (TensorRT's algorithm)
        nonzero = sliced > 0
        cand = np.zeros(stop)
        for ch in np.array_split(np.arange(stop), levels):
            nz = nonzero[ch]
            if nz.any():
                cand[ch[nz]] = sliced[ch].sum() / nz.sum()
        p = ref / ref.sum()
        q = cand / max(cand.sum(), 1e-12)
        mask = p > 0
        kl = float((p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))).sum())
        if kl < best:
            best, best_stop = kl, stop
    return float(edges[best_stop])


@torch.no_grad()
def calibrate(gm: torch.nn.Module, batches: list[dict[str, torch.Tensor]], method: str = "max",
              percentile: float = 99.99) -> dict[str, float]:
    """Set every activation fake-quant's range from `batches`; returns {fake-quant name: amax}."""
    acts, weights = fake_quants(gm)
    set_enabled(list(acts.values()) + list(weights.values()), fake_quant=False, observer=False)
    maxima = {n: 0.0 for n in acts}
    hists: dict[str, np.ndarray] = {}
    stage = {"pass": "max"}

    def hook_for(name: str):
        def hook(_m, args):
            x = args[0].detach().abs().float()
            if stage["pass"] == "max":
                maxima[name] = max(maxima[name], float(x.max()))
            else:
                top = max(maxima[name], 1e-8)
                h = torch.histc(x.flatten(), bins=BINS, min=0.0, max=top).double().numpy()
                hists[name] = hists.get(name, 0) + h
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in acts.items()]
    try:
        for b in batches:
            gm(**b)
        if method in ("percentile", "entropy", "mse"):
            stage["pass"] = "hist"
            for b in batches:
                gm(**b)
    finally:
        for h in handles:
            h.remove()
    amaxes = {}
    for name, fq in acts.items():
        top = max(maxima[name], 1e-8)
        if name in hists:
            amax = amax_from_histogram(hists[name], np.linspace(0, top, BINS + 1), method, percentile)
        else:
            amax = top
        set_range(fq, amax)
        amaxes[name] = amax
    set_enabled(acts.values(), fake_quant=True, observer=False)  # frozen activation grids
    set_enabled(weights.values(), fake_quant=True, observer=True)  # weight grids follow the weights
    if batches:
        gm(**batches[0])  # fills the weight fake-quants' scales
    log.info("calibrated %d activation ranges (%s)", len(amaxes), method)
    return amaxes


def set_range(fq, amax: float) -> None:
    """Put [-amax, amax] into the fake-quant's observer (convert_pt2e reads it from there) and its buffers."""
    obs = fq.activation_post_process
    obs.min_val.copy_(torch.tensor(-float(amax)))
    obs.max_val.copy_(torch.tensor(float(amax)))
    scale, zp = obs.calculate_qparams()
    fq.scale.resize_(scale.shape).copy_(scale)
    fq.zero_point.resize_(zp.shape).copy_(zp)
