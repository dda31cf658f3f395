"""eLORETA: exact low-resolution electromagnetic tomography.

The iterative source-weight fit of Pascual-Marqui (2011) as implemented in
MNE-Python's ``_compute_eloreta``: the weights ``R`` (one per source and
orientation, or a 3x3 block per source) are iterated until
``R_k = (G_k^T N G_k)^(-1/2)`` with ``N = (G R G^T + lambda2 I)^+`` (restricted to
the noise-covariance rank) stops changing, with ``trace(G R G^T) = rank`` kept
after every step so that ``lambda2`` keeps its meaning. Depth weighting is not
used (eLORETA compensates depth by construction); the loose-orientation prior is
reapplied after each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linalg import regularized_inverse_singular_values, svd_economy

__all__ = ["EloretaOptions", "EloretaResult", "solve_eloreta_weights", "compute_eloreta_kernel"]


@dataclass(frozen=True)
class EloretaOptions:
    """Options of the eLORETA weight solver.

    Parameters
    ----------
    max_iter : int
        Maximum number of iterations (MNE default 20).
    eps : float
        Convergence threshold on the relative change of the weights
        ``||R - R_last|| / ||R_last||`` (MNE default 1e-6).
    force_equal : bool | None
        Use one weight per source for all three orientations (like dSPM and
        sLORETA) instead of a 3x3 weight matrix. ``None`` means ``False``,
        exactly as MNE-Python's code does (its documentation suggests ``True``
        for loose operators; pass ``True`` explicitly to get that).
    """

    max_iter: int = 20
    eps: float = 1e-6
    force_equal: bool | None = None

    def __post_init__(self):
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a positive number, got {self.eps!r}")
        if self.force_equal not in (None, True, False):
            raise ValueError(f"force_equal must be None, True or False, got {self.force_equal!r}")

    @classmethod
    def coerce(cls, options) -> EloretaOptions:
        """Build from None, a dict (MNE ``method_params`` keys) or an instance."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, dict):
            unknown = set(options) - {"max_iter", "eps", "force_equal"}
            if unknown:
                raise ValueError(f"unknown eLORETA option(s) {sorted(unknown)}")
            return cls(**options)
        raise ValueError(f"eloreta_options must be EloretaOptions, dict or None, got {options!r}")


@dataclass(frozen=True)
class EloretaResult:
    """Fitted eLORETA weights.

    Attributes
    ----------
    weights : ndarray, shape (n_cols,) or (n_sources, 3, 3)
        Source weights ``R`` (normalised so that ``trace(G R G^T) = rank``).
    n_iter : int
        Iterations performed.
    delta : float
        Relative weight change of the last iteration.
    converged : bool
        ``delta < eps``.
    """

    weights: np.ndarray
    n_iter: int
    delta: float
    converged: bool


def _sym_pow_3x3(m: np.ndarray, power: float, rcond: float = 1e-7):
    """Batched symmetric matrix power; returns (M**power, sqrt-eigenvalues)."""
    s, u = np.linalg.eigh(m)
    limit = s[..., -1:] * rcond
    if not np.all(s >= -limit):
        raise ValueError("eLORETA: a 3x3 source block is not positive semi-definite")
    s = s.copy()
    s[s <= limit] = np.inf if power < 0 else 0.0
    s = np.sqrt(s)
    use = 1.0 / s if power < 0 else s
    out = np.matmul(u * use[..., None, :], np.swapaxes(u, -1, -2))
    return out, s


def _normalize(g, r, g3, rank, blocks):
    if blocks:
        r_gt = np.matmul(r, g3).reshape(-1, g.shape[0])
    else:
        r_gt = r[:, None] * g.T
    grg = g @ r_gt
    norm = np.trace(grg) / rank
    grg /= norm
    r /= norm
    return grg


def solve_eloreta_weights(
    gain_white: np.ndarray,
    n_orient: int,
    lambda2: float,
    rank: int,
    orient_prior: np.ndarray | None = None,
    options: EloretaOptions | dict | None = None,
) -> EloretaResult:
    """Fit eLORETA source weights.

    Parameters
    ----------
    gain_white : ndarray, shape (n_channels, n_sources * n_orient)
        Whitened gain (dimensionless per A·m), source-major columns.
    n_orient : int
        1 or 3.
    lambda2 : float
        Regularisation (> 0).
    rank : int
        Rank of the whitened data space (noise covariance rank).
    orient_prior : ndarray, shape (n_sources * n_orient,) | None
        Orientation prior variances (loose), reapplied after each step.
    options : EloretaOptions | dict | None

    Returns
    -------
    EloretaResult
        Weights for the gain *without* the orientation prior, and convergence info.
    """
    opts = EloretaOptions.coerce(options)
    force_equal = bool(opts.force_equal)
    g = np.array(gain_white, dtype=np.float64)
    n_ch, n_cols = g.shape
    n_src = n_cols // n_orient
    std = np.ones(n_cols) if orient_prior is None else np.sqrt(orient_prior)
    g *= std
    blocks = n_orient == 3 and not force_equal
    g3 = g.reshape(n_ch, n_src, 3).transpose(1, 2, 0) if n_orient == 3 else None
    if blocks:
        r_prior = std.reshape(n_src, 1, 3) * std.reshape(n_src, 3, 1)
        r = np.tile(np.eye(3), (n_src, 1, 1)) * r_prior
    else:
        r_prior = std**2
        r = np.ones(n_cols) * r_prior
    grg = _normalize(g, r, g3, rank, blocks)
    delta, n_iter, converged = np.inf, 0, False
    for it in range(int(opts.max_iter)):
        s, u = np.linalg.eigh(grg)
        s = np.abs(s)
        order = np.argsort(s)[::-1][:rank]
        s, u = s[order], u[:, order]
        with np.errstate(divide="ignore"):
            s = np.where(s > 0, 1.0 / (s + lambda2), 0.0)
        n_mat = (u * s) @ u.T
        r_last = r.copy()
        if n_orient == 1:
            r[:] = 1.0 / np.sqrt(np.sum((n_mat @ g) * g, axis=0))
        else:
            gn3 = (g.T @ n_mat).reshape(n_src, 3, n_ch)
            m = np.matmul(gn3, np.swapaxes(g3, -2, -1))
            if force_equal:
                _, sq = _sym_pow_3x3(m, -0.5)
                r[:] = np.repeat(1.0 / np.mean(sq, axis=-1), 3)
            else:
                r[:], _ = _sym_pow_3x3(m, -0.5)
        r *= r_prior
        grg = _normalize(g, r, g3, rank, blocks)
        delta = float(np.linalg.norm(r.ravel() - r_last.ravel()) / np.linalg.norm(r_last.ravel()))
        n_iter = it + 1
        if delta < opts.eps:
            converged = True
            break
    # normalise the weights for the gain without the orientation prior
    g /= std
    g3 = g.reshape(n_ch, n_src, 3).transpose(1, 2, 0) if n_orient == 3 else None
    _normalize(g, r, g3, rank, blocks)
    return EloretaResult(weights=r, n_iter=n_iter, delta=delta, converged=converged)


def _r_sqrt_rows(mat: np.ndarray, r_sqrt: np.ndarray) -> np.ndarray:
    """``R^(1/2) @ mat`` for mat of shape (n_cols, k)."""
    if r_sqrt.ndim == 1:
        return r_sqrt[:, None] * mat
    n_src = r_sqrt.shape[0]
    return np.matmul(r_sqrt, mat.reshape(n_src, 3, -1)).reshape(3 * n_src, -1)


def compute_eloreta_kernel(inv, lambda2: float, white_proj: np.ndarray, sqrt_nave: float, options):
    """eLORETA imaging kernel in the operator's frame (used by ``prepare_inverse``).

    Parameters
    ----------
    inv : InverseOperator
    lambda2 : float
    white_proj : ndarray, shape (n_channels, n_channels)
        Whitener (for the data's nave) times the average-reference projector.
    sqrt_nave : float
        ``sqrt(nave / inv.nave)``: scale of the whitened gain for the data.
    options : EloretaOptions | dict | None

    Returns
    -------
    kernel : ndarray, shape (n_sources * n_orient, n_channels)
        A·m/V.
    info : dict
        ``n_iter``, ``delta``, ``converged``, ``force_equal``.
    """
    opts = EloretaOptions.coerce(options)
    g = inv.gain_white * sqrt_nave
    res = solve_eloreta_weights(g, inv.n_orient, lambda2, inv.rank, inv.orient_prior, opts)
    r = res.weights
    if r.ndim == 1:
        r_sqrt = np.sqrt(r)
        a = g * r_sqrt
    else:
        r_sqrt, _ = _sym_pow_3x3(r, 0.5)
        a = _r_sqrt_rows(g.T, r_sqrt).T
    u, s, vt = svd_economy(a)
    reginv = regularized_inverse_singular_values(s, inv.rank, lambda2)
    leads = _r_sqrt_rows(vt.T, r_sqrt)
    kernel = leads @ ((u.T * reginv[:, None]) @ white_proj)
    info = {
        "n_iter": res.n_iter,
        "delta": res.delta,
        "converged": res.converged,
        "force_equal": bool(opts.force_equal),
    }
    return kernel, info
