"""Input checks and one-sample t-tests of :mod:`exgsrc.stats` (see its notes)."""

from __future__ import annotations

import numbers

import numpy as np

_SIGMA_METHODS = ("relative", "absolute")


# --------------------------------------------------------------------------- validation


def _check_data(X, name="X") -> np.ndarray:
    """Float64 ``(n_subjects, n_times, n_sources)`` array, finite, >= 3 subjects."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n_subjects, n_times, n_sources), got {X.shape}; "
            "for one time point use X[:, np.newaxis, :]"
        )
    if X.shape[0] < 3:
        raise ValueError(
            f"{name} holds {X.shape[0]} subject(s); a t-test across subjects needs at least 3"
        )
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"{name} has no time points or no sources: shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        subj, ti, si = np.unravel_index(int(np.argmin(finite.ravel())), X.shape)
        n_bad = int(finite.size - np.count_nonzero(finite))
        raise ValueError(
            f"{name} holds {n_bad} non-finite value(s); first at subject {subj}, "
            f"time index {ti}, source {si}: {X[subj, ti, si]}"
        )
    return X


def _check_tail(tail) -> int:
    if isinstance(tail, bool) or tail not in (-1, 0, 1):
        raise ValueError(f"tail must be -1, 0 or 1, got {tail!r}")
    return int(tail)


def _check_sigma(sigma, method) -> tuple[float, str]:
    if method not in _SIGMA_METHODS:
        raise ValueError(f"sigma_method must be one of {_SIGMA_METHODS}, got {method!r}")
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return sigma, method


def _check_n_permutations(n_permutations) -> int | str:
    if isinstance(n_permutations, str):
        if n_permutations != "all":
            raise ValueError(f'n_permutations must be an integer or "all", got {n_permutations!r}')
        return "all"
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, numbers.Integral):
        raise ValueError(f'n_permutations must be an integer or "all", got {n_permutations!r}')
    if n_permutations < 2:
        raise ValueError(f"n_permutations must be >= 2, got {n_permutations}")
    return int(n_permutations)


def _check_seed(seed) -> int:
    """An integer seed; ``None`` draws one from the OS (and it is recorded)."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _check_max_step(max_step) -> int:
    if isinstance(max_step, bool) or not isinstance(max_step, numbers.Integral) or max_step < 1:
        raise ValueError(f"max_step must be an integer >= 1, got {max_step!r}")
    return int(max_step)


# --------------------------------------------------------------------------- t-tests


def _t_values(X2d: np.ndarray, sigma: float, method: str) -> np.ndarray:
    """One-sample t over axis 0 of ``(n, m)`` data, as ``mne.stats.ttest_1samp_no_p``.

    Points whose (regularised) variance is exactly 0 get t = 0 (MNE: nan or
    inf); its permutation loop does the same for zero variance.
    """
    n, m = X2d.shape
    var = np.empty(m)
    mean = np.empty(m)
    # column blocks: np.var's temporary stays small (same per-column arithmetic)
    step = max(1, 2**22 // max(n, 1))
    for c0 in range(0, m, step):
        block = X2d[:, c0 : c0 + step]
        var[c0 : c0 + step] = np.var(block, axis=0, ddof=1)
        mean[c0 : c0 + step] = np.mean(block, axis=0)
    if sigma > 0:
        var += sigma * np.max(var) if method == "relative" else sigma
    t = np.zeros_like(mean)
    ok = var > 0
    t[ok] = mean[ok] / np.sqrt(var[ok] / n)
    return t


def ttest_1samp(X, sigma: float = 0.0, sigma_method: str = "relative") -> np.ndarray:
    """One-sample t-test against 0 across subjects (axis 0), without p-values.

    Parameters
    ----------
    X : array-like, shape (n_subjects, ...)
        One map per subject (any trailing shape, e.g. ``(n_times,
        n_sources)``), in the data's unit; at least 3 subjects, all finite.
    sigma : float
        "Hat" variance regularisation (Ridgway et al. 2012): the variance
        used is ``var + sigma * max(var)`` (``sigma_method="relative"``, max
        over all points) or ``var + sigma`` (``"absolute"``, in the data's
        unit squared). 0 (default) is the plain t-test; ``1e-3`` is the usual
        relative choice.
    sigma_method : {"relative", "absolute"}
        How ``sigma`` is applied, as MNE's ``ttest_1samp_no_p(method=)``.

    Returns
    -------
    t : ndarray, shape X.shape[1:]
        t-values (dimensionless), ``mean / sqrt(var / n_subjects)`` with the
        ``ddof=1`` variance; 0 where the variance is exactly 0.
    """
    sigma, sigma_method = _check_sigma(sigma, sigma_method)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim < 1 or X.shape[0] < 3:
        raise ValueError(f"X must have at least 3 subjects along axis 0, got shape {X.shape}")
    bad = ~np.isfinite(X)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad.ravel())), X.shape)
        raise ValueError(f"X holds non-finite values; first at index {tuple(map(int, where))}")
    flat = X.reshape(X.shape[0], -1)
    return _t_values(flat, sigma, sigma_method).reshape(X.shape[1:])


def paired_difference(X_a, X_b) -> np.ndarray:
    """Per-subject difference of two conditions, checked for shape and finiteness.

    Parameters
    ----------
    X_a, X_b : array-like, shape (n_subjects, n_times, n_sources)
        The two conditions of the same subjects in the same order, same unit.

    Returns
    -------
    diff : ndarray, shape (n_subjects, n_times, n_sources)
        ``X_a - X_b`` (float64), ready for :func:`cluster_permutation_test`,
        :func:`tfce_permutation_test` or :func:`tmax_permutation_test`.
    """
    a = np.asarray(X_a)
    b = np.asarray(X_b)
    if a.shape != b.shape:
        raise ValueError(
            f"paired conditions must have the same shape (subjects, times, sources): "
            f"X_a {a.shape} vs X_b {b.shape}"
        )
    a = _check_data(a, "X_a")
    b = _check_data(b, "X_b")
    return a - b


def ttest_paired(X_a, X_b, sigma: float = 0.0, sigma_method: str = "relative") -> np.ndarray:
    """Paired t-test across subjects: :func:`ttest_1samp` of ``X_a - X_b``.

    Parameters
    ----------
    X_a, X_b : array-like, shape (n_subjects, n_times, n_sources)
        Two conditions of the same subjects, same order and unit.
    sigma : float
        "Hat" regularisation, see :func:`ttest_1samp`.
    sigma_method : {"relative", "absolute"}
        See :func:`ttest_1samp`.

    Returns
    -------
    t : ndarray, shape (n_times, n_sources)
        Paired t-values (dimensionless).
    """
    return ttest_1samp(paired_difference(X_a, X_b), sigma=sigma, sigma_method=sigma_method)


def t_threshold(n_subjects: int, p: float = 0.05, tail: int = 0) -> float:
    """Cluster-forming t threshold for an uncorrected point-wise ``p``.

    The default of MNE's cluster tests (``threshold=None``):
    ``-scipy.stats.t.ppf(p / (1 + (tail == 0)), n_subjects - 1)``, negated
    for ``tail=-1``.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (degrees of freedom + 1), >= 2.
    p : float
        Point-wise p-value in (0, 1), split over both tails when ``tail=0``.
    tail : {0, 1, -1}
        Two-tailed, upper or lower.

    Returns
    -------
    threshold : float
        t value (positive for tail 0 and 1, negative for tail -1).
    """
    from scipy.stats import t as t_dist

    tail = _check_tail(tail)
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if n_subjects < 2:
        raise ValueError(f"n_subjects must be >= 2, got {n_subjects}")
    thr = float(-t_dist.ppf(p / (1 + (tail == 0)), n_subjects - 1))
    return -thr if tail < 0 else thr


def _check_threshold(threshold, n, tail) -> float:
    if threshold is None:
        return t_threshold(n, 0.05, tail)
    if isinstance(threshold, dict):
        raise ValueError(
            "threshold must be a t value; for threshold-free cluster enhancement use "
            "tfce_permutation_test(start=, step=)"
        )
    thr = float(threshold)
    if not np.isfinite(thr):
        raise ValueError(f"threshold must be a finite t value, got {threshold!r}")
    if (tail < 0 and thr > 0) or (tail >= 0 and thr < 0):
        raise ValueError(
            f"threshold {thr} does not match tail={tail}: use a t value >= 0 for "
            "tail 0 and 1, <= 0 for tail -1 (as MNE)"
        )
    return thr
