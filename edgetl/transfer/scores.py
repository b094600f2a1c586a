"""Transferability scores on plain arrays (numpy only, float64). Higher is better for every score.

- `logme`: LogME (You et al., ICML 2021), the log evidence per sample of a Bayesian linear model that
  predicts each class's 0/1 indicator from the features, maximised over its two hyper-parameters.
- `leep`: LEEP (Nguyen et al., ICML 2020), from the source classifier's probabilities.
- `nce`: NCE (Tran et al., ICCV 2019), the negative conditional entropy of the target labels given the
  source classifier's hard labels.
- `h_score`: H-score (Bao et al., ICIP 2019); `shrinkage=True` is the Ledoit-Wolf regularised H-score
  (Ibrahim et al., ICLR 2022), which stays meaningful when there are fewer samples than feature dimensions.

Labels may be any integers: they are mapped to 0..C-1 first (a gap such as {0, 2} would otherwise add an
empty "class" that LogME fits perfectly).
"""

from __future__ import annotations

import numpy as np

from edgetl.errors import DataError

_EPS = 1e-5  # floor of ||m||^2 and ||y - Fm||^2 in LogME's updates, as in the authors' code


def _matrix(values, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{what} must be a 2-D array [samples, columns]; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{what} holds NaN or infinite values ({int((~np.isfinite(a)).sum())} of {a.size})",
                        hint="check the model: its features diverged or the inputs are not normalised")
    return a


def _classes(labels, n: int, what: str = "labels") -> tuple[np.ndarray, int]:
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != n:
        raise DataError(f"{what} has {y.shape[0]} entries for {n} samples; expected one per sample")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what} must be integers; got dtype {y.dtype}")
    classes, index = np.unique(y, return_inverse=True)
    return index.reshape(-1), len(classes)


def _target_labels(labels, n: int) -> tuple[np.ndarray, int]:
    y, c = _classes(labels, n)
    if c < 2:
        raise DataError(f"a transferability score needs at least 2 classes; the labels hold {c}",
                        hint="score on a sample that holds examples of every class")
    return y, c


def _rank_cut(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which singular values (or eigenvalues of a Gram matrix) count as non-zero: numpy's matrix_rank rule."""
    if values.size == 0 or values.max() <= 0:
        return np.zeros(values.shape, dtype=bool)
    return values > values.max() * max(shape) * np.finfo(np.float64).eps


# ---------------------------------------------------------------- LogME


def logme(features, labels, *, tol: float = 1e-6, max_iter: int = 200) -> float:
    """LogME of `features` [N, D] for `labels` [N]: mean over classes of the maximum log evidence per sample.

    The fixed-point updates of alpha (prior precision) and beta (noise precision) run on one SVD of the
    features, so each class costs O(N * rank) and each iteration O(rank). The evidence counts all D
    dimensions (D - rank of them with eigenvalue 0), which is exact also when N < D."""
    f = _matrix(features, "features")
    n, d = f.shape
    y, c = _target_labels(labels, n)
    if n > d:  # the Gram matrix is the smaller problem: D x D
        s2, v = np.linalg.eigh(f.T @ f)
        keep = _rank_cut(np.sqrt(np.clip(s2, 0, None)), f.shape)
        s2, v = s2[keep], v[:, keep]
        u = (f @ v) / np.sqrt(s2)
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        keep = _rank_cut(s, f.shape)
        u, s2 = u[:, keep], s[keep] ** 2
    evidences = []
    for k in range(c):
        target = (y == k).astype(np.float64)
        x2 = (u.T @ target) ** 2
        outside = max(float(target @ target - x2.sum()), 0.0)  # the part of y no weight vector can fit
        evidences.append(_max_evidence(s2, x2, outside, n, d, tol, max_iter))
    return float(np.mean(evidences))


def _fit_terms(s2: np.ndarray, x2: np.ndarray, outside: float, t: float) -> tuple[float, float, float]:
    """gamma (effective number of parameters), ||m||^2 and ||y - F m||^2 at alpha / beta = t."""
    gamma = float((s2 / (s2 + t)).sum())
    m2 = float((s2 * x2 / (s2 + t) ** 2).sum())
    res2 = float((x2 / (1.0 + s2 / t) ** 2).sum()) + outside
    return gamma, m2, res2


def log_evidence(s2: np.ndarray, x2: np.ndarray, outside: float, n: int, d: int, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) / N, for F with squared singular values `s2` and y's squared coordinates
    `x2` on F's left singular vectors (`outside`: the squared norm of the rest of y)."""
    _, m2, res2 = _fit_terms(s2, x2, outside, alpha / beta)
    logdet = float(np.log(alpha + beta * s2).sum()) + (d - len(s2)) * np.log(alpha)
    value = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - logdet / 2 - beta / 2 * res2 - alpha / 2 * m2
             - n / 2 * np.log(2 * np.pi))
    return float(value / n)


def _max_evidence(s2: np.ndarray, x2: np.ndarray, outside: float, n: int, d: int, tol: float,
                  max_iter: int) -> float:
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma, m2, res2 = _fit_terms(s2, x2, outside, t)
        alpha = gamma / (m2 + _EPS)
        beta = max(n - gamma, _EPS) / (res2 + _EPS)
        if alpha <= 0:  # y is orthogonal to every feature direction: the evidence peaks at alpha -> 0+
            alpha = _EPS
        if abs(alpha / beta - t) / t <= tol:
            break
    # The updates can only approach alpha -> infinity (weights pinned to 0: the features do not help with this
    # class); that limit, y ~ N(0, I / beta) with beta = N / ||y||^2, is the supremum then.
    y2 = float(x2.sum()) + outside
    no_weights = 0.5 * np.log(n / y2) - 0.5 - 0.5 * np.log(2 * np.pi)
    return max(log_evidence(s2, x2, outside, n, d, alpha, beta), float(no_weights))


# ---------------------------------------------------------------- LEEP and NCE


def _probabilities(values) -> np.ndarray:
    p = _matrix(values, "source probabilities")
    if p.min() < 0 or p.max() > 1 or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise DataError(
            f"source probabilities must be rows of a softmax (each in [0, 1], summing to 1); got values in "
            f"[{p.min():.3g}, {p.max():.3g}] and row sums in [{p.sum(1).min():.3g}, {p.sum(1).max():.3g}]",
            hint="pass softmax(logits) of the source classifier, not the logits",
        )
    return p


def leep(source_probs, labels) -> float:
    """LEEP: the mean log-likelihood of the target labels under the 'expected empirical predictor' that maps
    the source classifier's distribution over its classes z through P(y | z) estimated on the same data."""
    p = _probabilities(source_probs)
    n = p.shape[0]
    y, c = _target_labels(labels, n)
    joint = np.zeros((c, p.shape[1]))
    np.add.at(joint, y, p)
    joint /= n
    marginal = joint.sum(0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    eep = (p * conditional[y]).sum(1)  # > 0: a source class with p_i[z] > 0 has joint[y_i, z] >= p_i[z] / n
    return float(np.mean(np.log(eep)))


def nce(source_labels, labels) -> float:
    """NCE = -H(Y | Z) for target labels Y and the source classifier's hard labels Z (argmax)."""
    z, cz = _classes(source_labels, len(np.asarray(source_labels).reshape(-1)), "source labels")
    y, c = _target_labels(labels, len(z))
    joint = np.zeros((c, cz))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(y)
    marginal = joint.sum(0)
    nonzero = joint > 0
    conditional = joint[nonzero] / np.broadcast_to(marginal, joint.shape)[nonzero]
    return float((joint[nonzero] * np.log(conditional)).sum())


# ---------------------------------------------------------------- H-score


def ledoit_wolf_shrinkage(centered: np.ndarray) -> float:
    """Ledoit-Wolf shrinkage intensity (0..1) towards mu * I for the covariance X^T X / N of centred X, in
    O(N * D * min(N, D)): the D x D products are replaced by the N x N Gram matrix when N < D."""
    n, d = centered.shape
    sq_norms = (centered ** 2).sum(1)
    trace = float(sq_norms.sum()) / n
    mu = trace / d
    gram = centered @ centered.T if n < d else centered.T @ centered
    frob2 = float((gram ** 2).sum()) / n ** 2  # ||S||_F^2, S = X^T X / N
    beta = (float((sq_norms ** 2).sum()) / n - frob2) / (d * n)
    delta = (frob2 - 2 * mu * trace + d * mu ** 2) / d
    beta = min(beta, delta)
    return 0.0 if beta <= 0 else beta / delta


def h_score(features, labels, *, shrinkage: bool = False) -> float:
    """H-score = tr(cov(f)^-1 cov(E[f | y])) (pseudo-inverse). `shrinkage`: the regularised variant,
    tr(cov_LW(f)^-1 (1 - a) cov(E[f | y])) with the Ledoit-Wolf estimate and its intensity a."""
    f = _matrix(features, "features")
    n, d = f.shape
    y, c = _target_labels(labels, n)
    f = f - f.mean(0)
    counts = np.bincount(y, minlength=c).astype(np.float64)
    means = np.zeros((c, d))
    np.add.at(means, y, f)
    means /= counts[:, None]
    weights = counts / (n - 1)  # cov(E[f|y]) with ddof=1 = sum_c weights_c mu_c mu_c^T
    # class means lie in the span of the rows of f: work in the basis of f's right singular vectors
    _, s, vh = np.linalg.svd(f, full_matrices=False)
    keep = _rank_cut(s, f.shape)
    s, vh = s[keep], vh[keep]
    coords = means @ vh.T  # [C, rank]
    if shrinkage:
        a = ledoit_wolf_shrinkage(f)
        mu = float((s ** 2).sum()) / (n * d)
        inverse = 1.0 / ((1 - a) * s ** 2 / n + a * mu)
        return float((1 - a) * (weights[:, None] * coords ** 2 * inverse).sum())
    inverse = (n - 1) / s ** 2
    return float((weights[:, None] * coords ** 2 * inverse).sum())
