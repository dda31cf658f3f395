"""Max-statistic (T-max) permutation test and FDR correction (see :mod:`exgsrc.stats`)."""

from __future__ import annotations

import numpy as np

from ._stats_engine import _DEFAULT_BATCH_BYTES, _special_rows, sign_flips
from ._stats_results import TmaxTestResult
from ._stats_ttest import _check_n_permutations, _check_seed, _check_tail


def tmax_permutation_test(
    X,
    *,
    tail: int = 0,
    n_permutations: int | str = 10000,
    seed: int | None = 0,
    max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
) -> TmaxTestResult:
    """Point-wise sign-flip permutation t-test corrected by the maximum |t|.

    Same numbers as ``mne.stats.permutation_t_test(X.reshape(n, -1),
    n_permutations, tail, rng=seed)``: for every flip the largest |t| over
    all points enters the null distribution, for every tail (MNE's choice;
    conservative for one-tailed tests); the observed maximum is included.

    Parameters
    ----------
    X : array-like, shape (n_subjects, ...)
        One map per subject (e.g. ``(n_times, n_sources)``); >= 3 subjects.
    tail : {0, 1, -1}
        Two-tailed, upper or lower.
    n_permutations : int | "all"
        Size of the null distribution, see :func:`sign_flips`.
    seed : int | None
        Seed of the random flips.
    max_batch_bytes : int
        Memory budget (bytes) of one batch of flipped t-maps.

    Returns
    -------
    result : TmaxTestResult
        t-map, corrected p-values (shape ``X.shape[1:]``), null distribution.
    """
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n_subjects, ...), got {X.shape}")
    if X.shape[0] < 3:
        raise ValueError(
            f"X holds {X.shape[0]} subject(s); a t-test across subjects needs at least 3"
        )
    X = np.ascontiguousarray(X, np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.ravel())), X.shape))
        raise ValueError(
            f"X holds {int(bad.sum())} non-finite value(s); first at index {where} (subject first)"
        )
    tail = _check_tail(tail)
    n_permutations = _check_n_permutations(n_permutations)
    seed = _check_seed(seed)
    n = X.shape[0]
    Xf = X.reshape(n, -1)
    m = Xf.shape[1]
    # MNE's moments: population variance of the data scaled by sqrt(n / (n - 1))
    x2 = np.mean(Xf**2, axis=0)
    dof = np.sqrt(n / (n - 1.0))

    def t_of(mean):
        std = np.sqrt(np.maximum(x2 - mean * mean, 0.0)) * dof
        t = np.zeros_like(mean)
        ok = std > 0
        t[ok] = mean[ok] / (std[ok] / np.sqrt(n))
        return t

    t_obs = t_of(np.mean(Xf, axis=0))
    signs, exhaustive, n_perm = sign_flips(n, n_permutations, tail, seed)
    maxima = np.empty(len(signs))
    special = _special_rows(signs)
    maxima[special != 0] = np.abs(t_obs).max()
    rest = np.flatnonzero(special == 0)
    B = int(max(1, min(rest.size or 1, max_batch_bytes // (3 * 8 * m))))
    for b0 in range(0, rest.size, B):
        rows = rest[b0 : b0 + B]
        means = (signs[rows] @ Xf) / n
        maxima[rows] = np.abs(t_of(means)).max(axis=1)
    h0 = np.concatenate([[np.abs(t_obs).max()], maxima])
    ref = np.sort(h0)
    x = {0: np.abs(t_obs), 1: t_obs, -1: -t_obs}[tail]
    p = (ref.size - np.searchsorted(ref, x, side="left")) / ref.size
    return TmaxTestResult(
        t_obs=t_obs.reshape(X.shape[1:]),
        p_values=p.reshape(X.shape[1:]),
        h0=h0,
        n_permutations=n_perm,
        exhaustive=exhaustive,
        tail=tail,
        seed=seed,
    )


def fdr_correction(p_values, alpha: float = 0.05, method: str = "indep"):
    """False discovery rate correction (Benjamini-Hochberg / -Yekutieli).

    As ``mne.stats.fdr_correction``: the ``k``-th smallest of ``m`` p-values
    is rejected when some ``j >= k`` has ``p_(j) < alpha * j / (m * c)``
    (``c = 1`` for "indep", ``sum_i 1/i`` for "negcorr").

    Parameters
    ----------
    p_values : array-like
        Uncorrected p-values, any shape.
    alpha : float
        False discovery rate.
    method : {"indep", "negcorr"}
        Benjamini-Hochberg (independent or positively correlated tests) or
        Benjamini-Yekutieli (any dependence).

    Returns
    -------
    reject : ndarray of bool, same shape
        Tests whose null hypothesis is rejected.
    p_corrected : ndarray, same shape
        Adjusted p-values (monotone step-up, capped at 1).
    """
    p = np.asarray(p_values, np.float64)
    shape = p.shape
    p = p.ravel()
    if p.size == 0:
        return np.zeros(shape, bool), np.zeros(shape)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values must lie in [0, 1] (no NaN)")
    if method in ("indep", "i", "p", "poscorr"):
        scale = 1.0
    elif method in ("negcorr", "n"):
        scale = np.sum(1.0 / np.arange(1, p.size + 1))
    else:
        raise ValueError(f"method must be 'indep' or 'negcorr', got {method!r}")
    order = np.argsort(p)
    p_sorted = p[order]
    ecdf = np.arange(1, p.size + 1) / float(p.size) / scale
    below = np.flatnonzero(p_sorted < ecdf * alpha)
    reject_sorted = np.zeros(p.size, bool)
    if below.size:
        reject_sorted[: below[-1] + 1] = True
    adjusted = np.minimum.accumulate((p_sorted / ecdf)[::-1])[::-1]
    adjusted = np.minimum(adjusted, 1.0)
    reject = np.empty(p.size, bool)
    p_corr = np.empty(p.size)
    reject[order] = reject_sorted
    p_corr[order] = adjusted
    return reject.reshape(shape), p_corr.reshape(shape)
