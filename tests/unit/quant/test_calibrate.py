"""Calibration methods: each picks a different, sensible clipping value on a heavy-tailed histogram."""

from __future__ import annotations

import numpy as np

from edgetl.quant.calibrate import BINS, amax_from_histogram


def heavy_tailed():
    rng = np.random.default_rng(0)
    x = np.abs(np.concatenate([rng.normal(0, 1, 200_000), rng.normal(0, 1, 20) * 40]))
    hist, edges = np.histogram(x, bins=BINS, range=(0, x.max()))
    return hist, edges, x


def test_max_is_the_largest_value():
    hist, edges, x = heavy_tailed()
    assert amax_from_histogram(hist, edges, "max") == np.float64(edges[-1])


def test_percentile_matches_numpy():
    hist, edges, x = heavy_tailed()
    got = amax_from_histogram(hist, edges, "percentile", 99.9)
    assert abs(got - np.percentile(x, 99.9)) <= 2 * (edges[1] - edges[0])


def test_mse_and_entropy_clip_outliers_and_differ():
    hist, edges, x = heavy_tailed()
    top = edges[-1]
    mse = amax_from_histogram(hist, edges, "mse")
    ent = amax_from_histogram(hist, edges, "entropy")
    # both clip some of the outliers but keep the bulk of the distribution (a unit normal: below ~4)
    assert np.percentile(x, 99) < mse < 0.9 * top
    assert np.percentile(x, 99) < ent < 0.9 * top
    assert len({round(v, 6) for v in (top, mse, ent, amax_from_histogram(hist, edges, "percentile", 99.99))}) == 4


def test_entropy_keeps_a_dominant_spike_at_the_top():
    # an input whose mass sits at its largest value (image background) must not be clipped away
    hist = np.zeros(BINS)
    hist[:200] = 10
    hist[-1] = 100_000
    edges = np.linspace(0, 2.1, BINS + 1)
    assert amax_from_histogram(hist, edges, "entropy") > 2.0


def test_entropy_ignores_the_zero_spike_of_a_relu_output():
    # after a ReLU most values are exactly 0: that spike must not drive the clip down to the smallest candidate
    # (which clipped MobileNetV2's activations to 1/16 of their range and its accuracy to 0.22)
    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros(800_000), np.abs(rng.normal(0, 1, 200_000))])
    hist, edges = np.histogram(x, bins=BINS, range=(0, x.max()))
    assert amax_from_histogram(hist, edges, "entropy") > np.percentile(x[x > 0], 95)
