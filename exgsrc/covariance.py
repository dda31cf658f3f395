"""Noise covariance estimation for average-referenced EEG.

The estimators follow the semantics of ``mne.compute_covariance`` when the
data carry an average-reference projector:

1. the data are projected with the average-reference projector
   (:func:`average_reference_projector`), so their rank is at most
   ``n_channels - 1``;
2. the rank of the projected data is estimated (or given) and the data are
   expressed in an orthonormal basis of their signal subspace (the top
   ``rank`` eigenvectors of the projected Gram matrix);
3. every estimator (empirical, shrinkage, Ledoit-Wolf, OAS, diagonal loading,
   cross-validated choices) works in that ``rank``-dimensional space, so the
   null space of the result stays empty (no shrinkage towards a full-rank
   identity);
4. the estimate is mapped back to channels and scaled by ``n / (n - 1)``.

All estimators are plain numpy/scipy re-implementations (no scikit-learn at
run time). Cross-validation uses contiguous, unshuffled K folds with the same
split sizes as ``sklearn.model_selection.KFold``, so cross-validated choices
agree with MNE-Python's. Data are internally scaled to microvolts (as MNE's
default EEG scaling) for numerical stability; reported log-likelihoods are in
those scaled units, comparable to MNE's ``cov['loglik']``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

__all__ = [
    "NoiseCov",
    "average_reference_projector",
    "compute_covariance",
    "compute_covariance_epochs",
    "regularize",
    "kfold_indices",
    "make_ad_hoc_cov",
    "SHRUNK_GRID",
]

#: Scaling applied to EEG data (V -> uV) before estimation, as MNE's default.
_EEG_SCALE = 1e6
#: MNE-Python's default shrinkage grid for ``method="shrunk"``.
SHRUNK_GRID = np.logspace(-4, 0, 30)
_AUTO_METHODS = ("shrunk", "diagonal_fixed", "empirical")
_ALIASES = {"diagonal": "diagonal_fixed", "shrinkage": "shrinkage"}
_METHODS = ("empirical", "shrunk", "shrinkage", "ledoit_wolf", "oas", "diagonal_fixed")
_EPS = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------
# Container


@dataclass(frozen=True)
class NoiseCov:
    """A noise covariance matrix with its channel names.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_channels)
        Covariance in V². Must be finite, symmetric and positive
        semi-definite (checked on construction).
    ch_names : tuple of str, length n_channels
        Channel names, in the order of ``data``'s rows.
    nfree : int
        Degrees of freedom (number of samples minus one).
    method : str
        Estimator that produced the matrix (e.g. ``"empirical"``,
        ``"shrunk"``, ``"regularized"``).
    rank : int | None
        Rank of the data space the estimate lives in (e.g.
        ``n_channels - 1`` after an average reference), if known.
    meta : dict
        Extra information: chosen shrinkage, cross-validated
        log-likelihoods, ... (JSON-serialisable values).
    """

    data: np.ndarray
    ch_names: tuple[str, ...]
    nfree: int
    method: str = "empirical"
    rank: int | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        data = np.asarray(self.data, dtype=np.float64)
        names = tuple(str(c) for c in self.ch_names)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "ch_names", names)
        object.__setattr__(self, "nfree", int(self.nfree))
        if self.rank is not None:
            object.__setattr__(self, "rank", int(self.rank))
        _check_cov_matrix(data, names, "data")

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.ch_names)

    def pick_channels(self, names: Sequence[str]) -> NoiseCov:
        """Return the covariance restricted to and reordered as ``names``.

        Parameters
        ----------
        names : sequence of str, length n_picked
            Channel names in the wanted order.

        Returns
        -------
        cov : NoiseCov
            Covariance of shape (n_picked, n_picked). ``rank`` is kept only if
            the channel set is unchanged.

        Raises
        ------
        ValueError
            If a name is missing from the covariance (all missing names are
            listed) or repeated.
        """
        names = [str(n) for n in names]
        _check_unique(names, "names")
        index = {n: i for i, n in enumerate(self.ch_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"channels not in the noise covariance: {missing}")
        idx = np.array([index[n] for n in names], dtype=int)
        rank = self.rank if len(idx) == self.n_channels else None
        return NoiseCov(
            self.data[np.ix_(idx, idx)],
            tuple(names),
            self.nfree,
            self.method,
            rank,
            dict(self.meta),
        )

    def to_xarray(self):
        """Labelled form: variable ``cov`` with dims ``channel``, ``channel2``.

        Returns
        -------
        ds : xarray.Dataset
            ``cov`` (V², dims ``channel``, ``channel2``), channel names on both
            dims; attrs ``nfree``, ``method``, ``rank`` (-1 if unknown) and
            ``meta_json``.
        """
        import xarray as xr

        names = list(self.ch_names)
        ds = xr.Dataset(
            {
                "cov": (
                    ("channel", "channel2"),
                    self.data,
                    {"units": "V^2", "long_name": "noise covariance"},
                )
            },
            coords={"channel": names, "channel2": names},
        )
        ds.attrs.update(
            nfree=int(self.nfree),
            method=str(self.method),
            rank=-1 if self.rank is None else int(self.rank),
            meta_json=json.dumps(_jsonable(self.meta)),
        )
        return ds

    @classmethod
    def from_xarray(cls, ds) -> NoiseCov:
        """Rebuild from :meth:`to_xarray` output.

        Parameters
        ----------
        ds : xarray.Dataset
            Must hold ``cov`` with dims ``channel``, ``channel2``.

        Returns
        -------
        cov : NoiseCov
        """
        if "cov" not in ds:
            raise ValueError("dataset has no variable 'cov'")
        da = ds["cov"]
        if tuple(da.dims) != ("channel", "channel2"):
            raise ValueError(f"'cov' must have dims ('channel', 'channel2'), got {da.dims}")
        names = [str(c) for c in ds["channel"].values]
        names2 = [str(c) for c in ds["channel2"].values]
        if names != names2:
            raise ValueError("coordinates 'channel' and 'channel2' differ")
        rank = int(ds.attrs.get("rank", -1))
        meta = json.loads(ds.attrs.get("meta_json", "{}"))
        return cls(
            np.asarray(da.values, dtype=np.float64),
            tuple(names),
            int(ds.attrs.get("nfree", 0)),
            str(ds.attrs.get("method", "unknown")),
            None if rank < 0 else rank,
            meta,
        )


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------
# Validation helpers


def _check_unique(names, what):
    seen, dup = set(), []
    for n in names:
        if n in seen:
            dup.append(n)
        seen.add(n)
    if dup:
        raise ValueError(f"duplicate channel names in {what}: {sorted(set(dup))}")


def _check_cov_matrix(data, names, what):
    if data.ndim != 2 or data.shape[0] != data.shape[1]:
        raise ValueError(f"covariance {what} must be square (n_ch, n_ch), got {data.shape}")
    if len(names) != data.shape[0]:
        raise ValueError(
            f"covariance has {data.shape[0]} rows but {len(names)} channel names were given"
        )
    _check_unique(names, "ch_names")
    if not np.all(np.isfinite(data)):
        bad = sorted({names[i] for i in np.nonzero(~np.isfinite(data))[0]})
        raise ValueError(f"covariance {what} contains NaN or inf (channels {bad})")
    scale = np.max(np.abs(data)) if data.size else 0.0
    asym = np.max(np.abs(data - data.T)) if data.size else 0.0
    if asym > 1e-8 * scale:
        raise ValueError(
            f"covariance {what} is not symmetric (max |C - C.T| = {asym:.3g}, "
            f"max |C| = {scale:.3g})"
        )
    if data.size and scale > 0:
        w = linalg.eigvalsh(data)
        # tolerance allows float32 round-off of a rank-deficient matrix
        if w[-1] < 0 or w[0] < -1e-6 * w[-1]:
            raise ValueError(
                f"covariance {what} is not positive semi-definite "
                f"(smallest eigenvalue {w[0]:.3g}, largest {w[-1]:.3g})"
            )


def _check_data(data, ch_names, ndim, what):
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != ndim:
        shape = "(n_channels, n_times)" if ndim == 2 else "(n_epochs, n_channels, n_times)"
        raise ValueError(f"{what} must have shape {shape}, got {data.shape}")
    names = [str(c) for c in ch_names]
    n_ch = data.shape[-2]
    if len(names) != n_ch:
        raise ValueError(f"{what} has {n_ch} channels but {len(names)} ch_names were given")
    _check_unique(names, "ch_names")
    finite = np.isfinite(data)
    if not finite.all():
        axes = tuple(i for i in range(data.ndim) if i != data.ndim - 2)
        bad = [names[i] for i in np.nonzero(~finite.all(axis=axes))[0]]
        raise ValueError(f"{what} contains NaN or inf values (channels {bad})")
    return data, names


# ---------------------------------------------------------------------------
# Public helpers


def average_reference_projector(n_ch: int) -> np.ndarray:
    """Average-reference projector ``I - 1 1ᵀ / n``.

    Parameters
    ----------
    n_ch : int
        Number of EEG channels (>= 2).

    Returns
    -------
    proj : ndarray, shape (n_ch, n_ch)
        Symmetric, idempotent projector removing the channel mean; rank
        ``n_ch - 1`` (equal to MNE's average-reference SSP operator).
    """
    n_ch = int(n_ch)
    if n_ch < 2:
        raise ValueError(f"n_ch must be >= 2 for an average reference, got {n_ch}")
    proj = np.full((n_ch, n_ch), -1.0 / n_ch)
    proj.flat[:: n_ch + 1] += 1.0
    return proj


def make_ad_hoc_cov(ch_names: Sequence[str], std: float = 0.2e-6) -> NoiseCov:
    """Diagonal ad-hoc noise covariance (as ``mne.make_ad_hoc_cov`` for EEG).

    Parameters
    ----------
    ch_names : sequence of str, length n_channels
    std : float
        Noise standard deviation per channel in V (MNE's EEG default 0.2 µV).

    Returns
    -------
    cov : NoiseCov
        ``data = std**2 * I`` (V²), ``nfree = 0``, ``method = "ad_hoc"``.
    """
    names = [str(c) for c in ch_names]
    std = float(std)
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"std must be a positive number of volts, got {std}")
    if not names:
        raise ValueError("ch_names is empty")
    return NoiseCov(np.eye(len(names)) * std**2, tuple(names), 0, "ad_hoc", None, {"std": std})


def kfold_indices(n_samples: int, n_splits: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous, unshuffled K-fold splits (as ``sklearn.model_selection.KFold``).

    Parameters
    ----------
    n_samples : int
        Number of samples (time points).
    n_splits : int
        Number of folds (>= 2). The first ``n_samples % n_splits`` folds get one
        extra sample.

    Returns
    -------
    splits : list of (train, test) index arrays
    """
    idx = np.arange(n_samples)
    return [
        (np.concatenate([idx[:a], idx[b:]]), idx[a:b])
        for a, b in _kfold_bounds(n_samples, n_splits)
    ]


def _kfold_bounds(n_samples, n_splits):
    """(start, stop) of each contiguous KFold test fold."""
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise ValueError(f"cv must be an integer number of folds, got {n_splits!r}")
    n_splits = int(n_splits)
    if n_splits < 2:
        raise ValueError(f"cv must be >= 2 folds, got {n_splits}")
    if n_splits > n_samples:
        raise ValueError(f"cv={n_splits} folds exceed the number of samples ({n_samples})")
    sizes = np.full(n_splits, n_samples // n_splits, dtype=int)
    sizes[: n_samples % n_splits] += 1
    stops = np.cumsum(sizes)
    return list(zip((stops - sizes).tolist(), stops.tolist(), strict=True))


# ---------------------------------------------------------------------------
# Estimators in the reduced space (all take S = YᵀY/n of shape (r, r))


def _shrunk(S, alpha):
    """(1 - a) S + a tr(S)/p I  (sklearn's shrunk_covariance)."""
    p = S.shape[0]
    out = (1.0 - alpha) * S
    out.flat[:: p + 1] += alpha * np.trace(S) / p
    return out


def _ledoit_wolf_shrinkage(G, sq_norms, n):
    """Ledoit-Wolf shrinkage (sklearn's formula, centred samples).

    ``G`` is the Gram matrix YᵀY (p, p) of the samples, ``sq_norms`` the squared
    norm of each sample (n,), ``n`` the number of samples.
    """
    p = G.shape[0]
    if p == 1:
        return 0.0
    emp_trace = np.diag(G) / n
    mu = emp_trace.sum() / p
    beta_ = float(sq_norms @ sq_norms)  # sum of the coefficients of <Y2.T, Y2>
    delta_ = float(np.sum(G * G)) / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * emp_trace.sum() + p * mu**2) / p
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


def _oas_shrinkage(S, n):
    """Oracle Approximating Shrinkage coefficient (sklearn's formulation)."""
    p = S.shape[0]
    if p == 1:
        return 0.0
    alpha = np.mean(S**2)
    mu2 = (np.trace(S) / p) ** 2
    num = alpha + mu2
    den = (n + 1) * (alpha - mu2 / p)
    return 1.0 if den == 0 else min(num / den, 1.0)


def _diag_fixed(S, reg):
    S = 0.5 * (S + S.T)
    out = S.copy()
    out.flat[:: S.shape[0] + 1] += reg * np.mean(np.diag(S))
    return out


def _pinvh_eig(w):
    """Eigen-decomposed pseudo-inverse of a symmetric matrix (scipy.pinvh cutoff)."""
    cutoff = np.max(np.abs(w)) * w.size * _EPS
    keep = np.abs(w) > cutoff
    inv = np.zeros_like(w)
    inv[keep] = 1.0 / w[keep]
    return inv


def _loglik_mne(cov, S_test):
    """Mean Gaussian log-likelihood of test data (MNE's scorer) under ``cov``."""
    w, V = linalg.eigh(cov)
    winv = _pinvh_eig(w)
    p = cov.shape[0]
    # trace(S_test @ precision)
    quad = np.sum((V.T @ S_test @ V).diagonal() * winv)
    # MNE's _logdet on the precision: eigenvalues clipped at max * size * eps
    tol = winv.max() * p * _EPS
    logdet = np.sum(np.log(np.where(winv > tol, winv, tol)))
    return -0.5 * quad - 0.5 * (p * np.log(2.0 * np.pi) - logdet)


def _cv_shrinkage_scores(grams, counts, grid):
    """Cross-validated log-likelihood of the shrunk estimator for each value in ``grid``.

    ``grams[k]`` is the Gram matrix of fold k, ``counts[k]`` its sample count.
    Returns the mean over folds, shape (len(grid),) (sklearn GridSearchCV semantics:
    ``log_likelihood`` with ``fast_logdet``).
    """
    grid = np.asarray(grid, dtype=float)
    total = sum(grams)
    n_total = counts.sum()
    scores = np.zeros((len(grams), grid.size))
    for k in range(len(grams)):
        n_tr = n_total - counts[k]
        S_tr = (total - grams[k]) / n_tr
        S_te = grams[k] / counts[k]
        p = S_tr.shape[0]
        lam, V = linalg.eigh(S_tr)
        mu = lam.sum() / p
        t = (V.T @ S_te @ V).diagonal()  # (p,)
        e = (1.0 - grid)[:, None] * lam[None, :] + grid[:, None] * mu  # (g, p)
        cutoff = np.abs(e).max(axis=1, keepdims=True) * p * _EPS
        keep = np.abs(e) > cutoff
        with np.errstate(divide="ignore"):
            inv = np.where(keep, 1.0 / np.where(keep, e, 1.0), 0.0)
            pos = inv > 0
            logdet = np.where(pos.all(axis=1), np.sum(np.log(np.where(pos, inv, 1.0)), 1), -np.inf)
        scores[k] = 0.5 * (-(inv @ t) + logdet - p * np.log(2.0 * np.pi))
    return scores.mean(axis=0)


class _Estimator:
    """A fitted-on-demand estimator in the reduced space."""

    def __init__(self, name, shrinkage=None, reg=0.1):
        self.name = name
        self.shrinkage = shrinkage
        self.reg = reg

    def fit(self, S):
        if self.name == "empirical":
            return S.copy()
        if self.name == "diagonal_fixed":
            return _diag_fixed(S, self.reg)
        if self.name in ("shrunk", "shrinkage", "ledoit_wolf", "oas"):
            return _shrunk(S, self.shrinkage)
        raise ValueError(f"unknown covariance method {self.name!r}")


# ---------------------------------------------------------------------------
# Core


def _estimate_rank_data(X):
    # singular values of X through its QR factor: the same values to ~1e-15
    # (Householder QR is backward stable) at a third to a quarter of the cost
    # of an SVD of the wide data matrix (benchmarks/bench_covariance.py)
    r = linalg.qr(X.T, mode="r", check_finite=False)[0]
    s = linalg.svdvals(r, check_finite=False)
    if s.size == 0 or s.max() == 0:
        return 0
    tol = s.size * s.max() * _EPS
    return int(np.sum(s > tol))


def _normalize_methods(method):
    if isinstance(method, str):
        if method == "auto":
            methods = list(_AUTO_METHODS)
        else:
            methods = [method]
    else:
        methods = list(method)
        if not methods:
            raise ValueError("method list is empty")
    out = []
    for m in methods:
        if not isinstance(m, str):
            raise ValueError(f"method must be a string, got {m!r}")
        m2 = _ALIASES.get(m, m)
        if m2 not in _METHODS:
            raise ValueError(
                f"unknown covariance method {m!r}; use one of {list(_METHODS)}, "
                "'diagonal' or 'auto'"
            )
        out.append(m2)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate covariance methods in {method!r}")
    return out


def _estimate(
    X,
    ch_names,
    methods,
    *,
    shrinkage,
    diagonal_reg,
    cv,
    rank,
    avg_ref,
    return_all,
    nfree,
    post=None,
):
    """Estimate from X (n_ch, n_samples) in volts (already mean-handled)."""
    n_ch, n_samples = X.shape
    if n_samples < 2:
        raise ValueError(f"need at least 2 samples to estimate a covariance, got {n_samples}")
    X *= _EEG_SCALE  # X is a private copy (callers pass a fresh array)
    if avg_ref:
        X -= X.mean(axis=0, keepdims=True)
    # rank of the (projected) data
    if rank is None:
        rank_ = _estimate_rank_data(X)
    else:
        rank_ = int(rank)
        max_rank = n_ch - 1 if avg_ref else n_ch
        if not 1 <= rank_ <= max_rank:
            raise ValueError(f"rank={rank} must be in [1, {max_rank}] for {n_ch} channels")
    if rank_ < 1:
        raise ValueError("data have rank 0 (all channels flat or identical)")
    grid_cv = "shrunk" in methods and (shrinkage is None or np.ndim(shrinkage) != 0)
    needs_cv = len(methods) > 1 or grid_cv
    if needs_cv:
        # Gram matrices and sums of the contiguous KFold test folds (channel space)
        bounds = _kfold_bounds(n_samples, cv)
        grams_ch = [X[:, a:b] @ X[:, a:b].T for a, b in bounds]
        sums_ch = [X[:, a:b].sum(axis=1) for a, b in bounds]
        counts = np.array([b - a for a, b in bounds])
        C = sum(grams_ch)
    else:
        C = X @ X.T
    if avg_ref:
        C -= C.mean(axis=0, keepdims=True)
        C -= C.mean(axis=1, keepdims=True)
    if rank_ == n_ch:
        U = V0 = None
        G = C
    else:
        _, V = linalg.eigh(C)
        U = V[:, n_ch - rank_ :]  # (n_ch, rank), orthonormal basis of the signal space
        V0 = V[:, : n_ch - rank_]  # discarded directions (reference, interpolation, ...)
        G = U.T @ C @ U
        G = 0.5 * (G + G.T)
    if needs_cv:
        if U is None:
            grams, sums = grams_ch, sums_ch
        else:
            grams = [U.T @ g @ U for g in grams_ch]
            sums = [U.T @ v for v in sums_ch]
    S = G / n_samples

    estimators = []
    info = {}
    for m in methods:
        if m == "empirical":
            estimators.append(_Estimator("empirical"))
        elif m == "diagonal_fixed":
            reg = float(diagonal_reg)
            if reg < 0:
                raise ValueError(f"diagonal_reg must be >= 0, got {diagonal_reg}")
            estimators.append(_Estimator("diagonal_fixed", reg=reg))
        elif m == "shrinkage":
            a = 0.1 if shrinkage is None else shrinkage
            if np.ndim(a) != 0 or not 0 <= float(a) <= 1:
                raise ValueError(f"shrinkage must be a number in [0, 1], got {a!r}")
            estimators.append(_Estimator("shrinkage", shrinkage=float(a)))
            info["shrinkage"] = {"shrinkage": float(a)}
        elif m == "shrunk":
            if shrinkage is not None and np.ndim(shrinkage) == 0:
                a = float(shrinkage)
                if not 0 <= a <= 1:
                    raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
                estimators.append(_Estimator("shrunk", shrinkage=a))
                info["shrunk"] = {"shrinkage": a}
                continue
            grid = SHRUNK_GRID if shrinkage is None else np.asarray(shrinkage, float)
            if grid.ndim != 1 or grid.size == 0 or np.any((grid < 0) | (grid > 1)):
                raise ValueError("shrinkage grid must be a non-empty 1-D array within [0, 1]")
            scores = _cv_shrinkage_scores(grams, counts, grid)
            best = float(grid[int(np.argmax(scores))])
            estimators.append(_Estimator("shrunk", shrinkage=best))
            info["shrunk"] = {"shrinkage": best, "grid": grid, "cv_scores": scores, "cv": cv}
        elif m == "ledoit_wolf":
            # squared norm of every sample inside the signal subspace
            sq_norms = np.einsum("ij,ij->j", X, X)
            if V0 is not None:
                Z = V0.T @ X
                sq_norms -= np.einsum("ij,ij->j", Z, Z)
            a = _ledoit_wolf_shrinkage(G, sq_norms, n_samples)
            estimators.append(_Estimator("ledoit_wolf", shrinkage=a))
            info["ledoit_wolf"] = {"shrinkage": a}
        elif m == "oas":
            a = _oas_shrinkage(S, n_samples)
            estimators.append(_Estimator("oas", shrinkage=a))
            info["oas"] = {"shrinkage": a}

    logliks = {}
    if len(estimators) > 1:
        total, total_sum = sum(grams), sum(sums)
        for est in estimators:
            vals = []
            for k in range(len(grams)):
                n_tr = n_samples - counts[k]
                G_tr = total - grams[k]
                if est.name == "diagonal_fixed":
                    # MNE's cross-validation clones this estimator without its
                    # ``assume_centered=True`` (keyword-only, dropped by
                    # get_params), so its training folds are mean-centred.
                    s_tr = total_sum - sums[k]
                    G_tr = G_tr - np.outer(s_tr, s_tr) / n_tr
                vals.append(_loglik_mne(est.fit(G_tr / n_tr), grams[k] / counts[k]))
            logliks[est.name] = float(np.mean(vals))

    results = []
    for est in estimators:
        c = est.fit(S)
        if U is not None:
            c = U @ c @ U.T
        c *= n_samples / max(n_samples - 1, 1)
        c /= _EEG_SCALE**2
        if post is not None:
            c = post(c)
        c = 0.5 * (c + c.T)
        meta = {"n_samples": int(n_samples), "avg_ref": bool(avg_ref)}
        meta.update(info.get(est.name, {}))
        if logliks:
            meta["loglik"] = logliks[est.name]
            meta["cv_loglik"] = dict(logliks)
            meta["cv"] = cv
        results.append(NoiseCov(c, tuple(ch_names), nfree, est.name, rank_, meta))
    if logliks:
        results.sort(key=lambda r: r.meta["loglik"], reverse=True)
    if return_all:
        return results
    return results[0]


def compute_covariance(
    data,
    ch_names,
    method="empirical",
    *,
    shrinkage=None,
    diagonal_reg=0.1,
    cv=3,
    rank=None,
    avg_ref=True,
    return_all=False,
):
    """Noise covariance of continuous EEG (e.g. a resting or empty segment).

    Channel means are removed over the whole segment (as
    ``mne.compute_raw_covariance`` with ``tstep=None``), then the data are
    average-referenced (if ``avg_ref``) and the covariance is estimated in the
    data's rank-reduced space (see the module docstring).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        EEG in volts.
    ch_names : sequence of str, length n_channels
    method : str | sequence of str
        ``"empirical"``; ``"shrunk"`` (identity shrinkage in the signal
        subspace; coefficient chosen by cross-validation over ``shrinkage``,
        MNE's grid ``logspace(-4, 0, 30)`` by default, or fixed if
        ``shrinkage`` is a number); ``"shrinkage"`` (fixed coefficient,
        default 0.1); ``"ledoit_wolf"``; ``"oas"``; ``"diagonal_fixed"``
        (alias ``"diagonal"``: adds ``diagonal_reg`` times the mean
        eigenvalue, as ``mne.cov.regularize``); ``"auto"`` (=
        ``["shrunk", "diagonal_fixed", "empirical"]``); or a list of these,
        in which case the estimator with the best cross-validated Gaussian
        log-likelihood is returned.
    shrinkage : float | array of float | None
        Fixed coefficient in [0, 1], or the grid for ``"shrunk"``.
    diagonal_reg : float
        Loading factor of ``"diagonal_fixed"`` (MNE's ``eeg=0.1``).
    cv : int
        Number of contiguous folds for cross-validation (KFold, no shuffle).
    rank : int | None
        Rank of the data subspace; ``None`` estimates it from the singular
        values of the projected data (MNE's ``tol='auto'`` rule).
    avg_ref : bool
        Apply the average-reference projector first (default; EEG).
    return_all : bool
        With several methods, return all estimates sorted by cross-validated
        log-likelihood (best first) instead of only the best.

    Returns
    -------
    cov : NoiseCov | list of NoiseCov
        ``data`` in V², ``nfree = n_times - 1``; ``meta`` holds the chosen
        shrinkage (``"shrinkage"``), cross-validation scores and
        ``loglik`` per method where applicable.
    """
    data, names = _check_data(data, ch_names, 2, "data")
    methods = _normalize_methods(method)
    X = data - data.mean(axis=1, keepdims=True)
    return _estimate(
        X,
        names,
        methods,
        shrinkage=shrinkage,
        diagonal_reg=diagonal_reg,
        cv=cv,
        rank=rank,
        avg_ref=avg_ref,
        return_all=return_all,
        nfree=data.shape[1] - 1,
    )


def compute_covariance_epochs(
    epochs,
    ch_names,
    method="empirical",
    *,
    keep_sample_mean=True,
    labels=None,
    shrinkage=None,
    diagonal_reg=0.1,
    cv=3,
    rank=None,
    avg_ref=True,
    return_all=False,
):
    """Noise covariance from epochs (e.g. baseline segments), as ``mne.compute_covariance``.

    All samples of all epochs are treated as observations, without removing
    any mean (epochs are expected to be baseline-corrected), unless
    ``keep_sample_mean=False``.

    Parameters
    ----------
    epochs : ndarray, shape (n_epochs, n_channels, n_times)
        EEG in volts.
    ch_names : sequence of str, length n_channels
    method : str | sequence of str
        See :func:`compute_covariance`.
    keep_sample_mean : bool
        If False, the evoked response (mean over epochs, per label) is
        removed from every epoch (MNE's normalisation); only with
        ``method="empirical"``.
    labels : sequence | None, length n_epochs
        Condition of each epoch, used only with ``keep_sample_mean=False``
        (one mean per condition). ``None``: a single condition.
    shrinkage, diagonal_reg, cv, rank, avg_ref, return_all
        See :func:`compute_covariance`.

    Returns
    -------
    cov : NoiseCov | list of NoiseCov
        ``nfree = n_epochs * n_times - 1``.
    """
    epochs, names = _check_data(epochs, ch_names, 3, "epochs")
    methods = _normalize_methods(method)
    n_epochs, n_ch, n_times = epochs.shape
    if n_epochs == 0:
        raise ValueError("epochs array is empty (0 epochs)")
    X = epochs.transpose(1, 0, 2).reshape(n_ch, n_epochs * n_times)
    if np.shares_memory(X, epochs):  # a view (single epoch): never modify the input
        X = X.copy()
    n_tot = X.shape[1]
    post = None
    if not keep_sample_mean:
        if methods != ["empirical"]:
            raise ValueError(
                f"keep_sample_mean=False is only supported with method='empirical', got {method!r}"
            )
        if labels is None:
            labels = np.zeros(n_epochs, dtype=int)
        labels = np.asarray(labels)
        if labels.shape != (n_epochs,):
            raise ValueError(f"labels must have length n_epochs={n_epochs}, got {labels.shape}")
        E = epochs - epochs.mean(axis=1, keepdims=True) if avg_ref else epochs
        mean_cov = np.zeros((n_ch, n_ch))
        norm_const = 0
        for lab in np.unique(labels):
            sel = labels == lab
            ne = int(sel.sum())
            s = E[sel].sum(axis=0)
            mean_cov += s @ s.T / ne
            norm_const += n_times * (ne - 1)
        if norm_const == 0:
            raise ValueError("keep_sample_mean=False needs at least 2 epochs per label")

        def post(c):
            return (c * (n_tot - 1) - mean_cov) / norm_const

    return _estimate(
        X,
        names,
        methods,
        shrinkage=shrinkage,
        diagonal_reg=diagonal_reg,
        cv=cv,
        rank=rank,
        avg_ref=avg_ref,
        return_all=return_all,
        nfree=n_tot - 1,
        post=post,
    )


def regularize(cov: NoiseCov, eeg: float = 0.1, rank=None, avg_ref: bool = True) -> NoiseCov:
    """Diagonal loading in the covariance's signal subspace (``mne.cov.regularize``).

    The covariance is restricted to its ``rank``-dimensional signal subspace
    (after the average-reference projector), ``eeg`` times the mean
    eigenvalue there is added to its diagonal, and the result is mapped back,
    so the null space (the average reference direction) stays empty.

    Parameters
    ----------
    cov : NoiseCov
        Covariance of EEG channels (V²).
    eeg : float
        Regularisation factor (>= 0).
    rank : int | None
        Rank of the signal subspace; ``None`` estimates it from the projected
        covariance's singular values (MNE's rule).
    avg_ref : bool
        Apply the average-reference projector (default; EEG).

    Returns
    -------
    cov : NoiseCov
        Regularised copy; ``method`` is kept, ``meta["regularize_eeg"]`` set.
    """
    if not isinstance(cov, NoiseCov):
        raise ValueError(f"cov must be a NoiseCov, got {type(cov).__name__}")
    eeg = float(eeg)
    if not np.isfinite(eeg) or eeg < 0:
        raise ValueError(f"eeg regularisation factor must be >= 0, got {eeg}")
    C = cov.data.copy()
    n = C.shape[0]
    if eeg == 0:
        return cov
    Cp = C
    if avg_ref:
        Cp = C - C.mean(axis=0, keepdims=True)
        Cp -= Cp.mean(axis=1, keepdims=True)
    if rank is None:
        s = linalg.svdvals(Cp)
        rank_ = int(np.sum(s > s.size * s.max() * _EPS)) if s.max() > 0 else 0
    else:
        rank_ = int(rank)
        if not 1 <= rank_ <= n:
            raise ValueError(f"rank={rank} must be in [1, {n}]")
    if rank_ < 1:
        raise ValueError("covariance has rank 0")
    _, V = linalg.eigh(Cp)
    U = V[:, n - rank_ :]
    sub = U.T @ C @ U
    sigma = np.mean(np.diag(sub))
    sub.flat[:: rank_ + 1] += eeg * sigma
    out = U @ sub @ U.T
    out = 0.5 * (out + out.T)
    meta = dict(cov.meta)
    meta["regularize_eeg"] = eeg
    return NoiseCov(out, cov.ch_names, cov.nfree, cov.method, rank_, meta)
