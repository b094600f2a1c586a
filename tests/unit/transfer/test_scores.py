"""Transferability scores against published values of the authors' code, closed forms and brute force."""

import numpy as np
import pytest

from edgetl.errors import DataError
from edgetl.transfer.rank import kendall_tau, spearman
from edgetl.transfer.scores import h_score, ledoit_wolf_shrinkage, leep, logme, nce


def _thuml_case(separable: bool):
    rs = np.random.RandomState(0)
    f = rs.randn(200, 16)
    y = np.arange(200) % 4
    if separable:
        f[:, :4] += 3 * np.eye(4)[y]
    return f, y


def _direct_evidence(f, target, alpha, beta):
    """log N(target; 0, I/beta + F F^T/alpha) / N: the marginal likelihood written out, no SVD."""
    n = len(target)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return (-0.5 * logdet - 0.5 * target @ np.linalg.solve(cov, target) - n / 2 * np.log(2 * np.pi)) / n


def _grid_max_evidence(f, target):
    grid = np.linspace(-6, 16, 45)  # log alpha up to 16: the maximum can sit at alpha -> infinity
    best = max((_direct_evidence(f, target, np.exp(a), np.exp(b)), a, b) for a in grid for b in grid[:30])
    step = grid[1] - grid[0]
    for _ in range(12):  # shrink a local grid around the best point
        _, a0, b0 = best
        around = np.linspace(-step, step, 7)
        best = max((_direct_evidence(f, target, np.exp(a0 + da), np.exp(b0 + db)), a0 + da, b0 + db)
                   for da in around for db in around)
        step /= 3
    return best[0]


@pytest.mark.parametrize("n,d", [(40, 6), (12, 20)])  # more samples than dimensions, and fewer
def test_logme_equals_the_brute_force_maximum_of_the_evidence(n, d):
    rs = np.random.RandomState(n)
    y = rs.randint(0, 3, n)
    f = rs.randn(n, d)
    f[:, :3] += np.eye(3)[y]
    reference = np.mean([_grid_max_evidence(f, (y == k).astype(float)) for k in range(3)])
    assert logme(f, y) == pytest.approx(reference, abs=2e-4)


def test_logme_matches_the_published_values_of_the_reference_code():
    # thuml/LogME's fixed-point code on this data gives -0.72501 (noise) and -0.21824 (separable)
    assert logme(*_thuml_case(False)) == pytest.approx(-0.72501, abs=2e-4)
    assert logme(*_thuml_case(True)) == pytest.approx(-0.21824, abs=2e-4)


def test_logme_relabels_gaps_in_the_labels():
    f, y = _thuml_case(False)
    assert logme(f, y * 2 + 5) == pytest.approx(logme(f, y), abs=1e-12)


def test_h_score_closed_form_on_constructed_features():
    f = [[0, 1], [0, -1], [1, 1], [1, -1]]
    assert h_score(f, [0, 0, 1, 1]) == pytest.approx(1.0)  # the first column is the class: all its variance
    assert h_score(f, [0, 1, 1, 0]) == pytest.approx(0.0, abs=1e-12)  # class means coincide


def test_h_score_equals_the_definition_with_explicit_covariances():
    f, y = _thuml_case(True)
    g = np.stack([f[y == c].mean(0) for c in range(4)])[y]
    direct = np.trace(np.linalg.pinv(np.cov(f, rowvar=False)) @ np.cov(g, rowvar=False))
    assert h_score(f, y) == pytest.approx(direct, rel=1e-9)
    assert h_score(f, y) == pytest.approx(2.2377, abs=1e-4)  # tllib's hscore on the same data


def test_shrinkage_h_score_matches_tllib_and_vanishes_on_noise():
    assert h_score(*_thuml_case(True), shrinkage=True) == pytest.approx(2.0643, abs=1e-4)
    assert h_score(*_thuml_case(False), shrinkage=True) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n,d", [(60, 8), (20, 50)])
def test_ledoit_wolf_intensity_matches_scikit_learn(n, d):
    covariance = pytest.importorskip("sklearn.covariance")
    x = np.random.RandomState(1).randn(n, d) @ np.diag(np.linspace(0.5, 2, d))
    x = x - x.mean(0)
    assert ledoit_wolf_shrinkage(x) == pytest.approx(covariance.LedoitWolf().fit(x).shrinkage_, rel=1e-9)


def test_leep_hand_computed_example():
    p = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]]
    # P(y|z) = [[1.7/2.2, .3/1.8], [.5/2.2, 1.5/1.8]]; mean log of sum_z P(y_i|z) p_i[z]
    cond = np.array([[1.7 / 2.2, 0.3 / 1.8], [0.5 / 2.2, 1.5 / 1.8]])
    by_hand = np.mean([np.log(np.dot(cond[yi], pi)) for pi, yi in zip(np.array(p), [0, 0, 1, 1], strict=True)])
    assert leep(p, [0, 0, 1, 1]) == pytest.approx(by_hand, abs=1e-12)
    assert leep(p, [0, 0, 1, 1]) == pytest.approx(-0.383981, abs=1e-6)


def test_leep_and_nce_on_hard_source_labels():
    z = [0, 0, 1, 1]
    assert leep(np.eye(2)[z], [0, 1, 0, 1]) == pytest.approx(-np.log(2))  # source says nothing about y
    assert leep(np.eye(2)[[0, 1, 0, 1]], [0, 1, 0, 1]) == pytest.approx(0.0)  # source label = target label
    assert nce(z, [0, 1, 0, 1]) == pytest.approx(-np.log(2))
    assert nce([3, 7, 9], [0, 1, 2]) == pytest.approx(0.0)  # a bijection leaves no uncertainty


def test_leep_refuses_logits():
    with pytest.raises(DataError, match="softmax"):
        leep([[2.0, -1.0], [0.5, 3.0]], [0, 1])


def test_scores_refuse_one_class_and_mismatched_lengths():
    f = np.random.RandomState(0).randn(10, 3)
    with pytest.raises(DataError, match="at least 2 classes"):
        logme(f, np.zeros(10, int))
    with pytest.raises(DataError, match="9 entries for 10 samples"):
        h_score(f, np.arange(9) % 2)


def test_rank_correlations_by_hand_and_against_scipy():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant pair
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    stats = pytest.importorskip("scipy.stats")
    rs = np.random.RandomState(3)
    x, y = rs.randint(0, 4, 12), rs.randint(0, 5, 12)  # with ties
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
