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
from scipy import linalg as scipy_linalg
from scipy.linalg import blas, lapack

from .linalg import CHUNK_BYTES, WorkerPool, row_blocks, sym3_eigh

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


def _clip_eigenvalues(s: np.ndarray, rcond: float, inverse: bool) -> np.ndarray:
    """Check positive semi-definiteness; set eigenvalues <= rcond * max to inf/0."""
    limit = s[..., -1:] * rcond
    if not np.all(s >= -limit):
        raise ValueError("eLORETA: a 3x3 source block is not positive semi-definite")
    s = s.copy()
    s[s <= limit] = np.inf if inverse else 0.0
    return s


# ---------------------------------------------------------------------------
# the weight fit
#
# Notation: ``gt`` is the whitened gain transposed, one row per source
# component and one column per whitened channel that is not identically zero
# (the whitener's rows beyond the noise rank are 0): shape (n_cols, r). R is
# kept as a factor F with R = F F^T (a (n_src, 3, 3) stack for 3x3 blocks, a
# vector of sqrt(R) otherwise), so that
#
#   G R G^T = A^T A  with  A = F^T-weighted rows of gt    (r x r, one SYRK)
#
# and the source blocks of eLORETA's update, M_k = G_k^T N G_k with
# N = (G R G^T + lambda2 I)^-1, are Gram matrices of the rows of
#
#   H = gt L^-T,  L L^T = G R G^T + lambda2 I     (r x r Cholesky, one TRMM)
#
# so there is no (3 n_src)^2 matrix, no (3 n_src, n_ch) temporary and no
# per-source Python loop: per iteration ~2 r^2 n_cols flops in BLAS-3 (MNE:
# ~4 n^2 n_cols) plus about two reads of gt, done per cache-sized chunk of
# sources on each worker; the 3x3 powers come from one vectorised Jacobi pass
# (linalg.sym3_eigh). When ``rank`` is below r (a rank given by the caller), N
# keeps the ``rank`` largest eigenvalues of G R G^T as MNE does, through an
# eigh instead of the Cholesky.


def _apply_factor(gt: np.ndarray, fac: np.ndarray) -> np.ndarray:
    """Rows of ``A``: ``fac[i] * gt[i]`` (vector) or ``F_k^T @ gt_k`` per source (blocks)."""
    if fac.ndim == 1:
        return gt * fac[:, None]
    n_src = fac.shape[0]
    return np.matmul(fac.transpose(0, 2, 1), gt.reshape(n_src, 3, -1)).reshape(gt.shape)


class _NoiseInverse:
    """``N = (G R G^T + lambda2 I)^+`` restricted to the ``rank`` largest eigenvalues.

    ``N = C C^T``: Cholesky (``C = L^-T``) when every direction is kept, else
    ``C = U_k diag(1 / sqrt(s_k + lambda2))`` from an eigh (MNE's definition,
    which the Cholesky form equals when ``rank >= r``). ``L^-1`` is formed
    explicitly (r^3 / 3 flops, well conditioned: ``cond(L)**2 <= 1 + r /
    lambda2``) because OpenBLAS's TRMM on the tall gain is 1.5-2x faster than
    its TRSM here (benchmarks/README.md).
    """

    def __init__(self, gram: np.ndarray, lambda2: float, rank: int):
        r = gram.shape[0]
        self.chol = None
        if rank >= r:
            c = gram.copy()
            c.flat[:: r + 1] += lambda2
            try:
                self.chol = scipy_linalg.cholesky(c, lower=True, check_finite=False)
                self.chol_inv, info = lapack.dtrtri(self.chol, lower=1)
                if info == 0:
                    return
            except np.linalg.LinAlgError:  # pragma: no cover - not positive definite
                pass
            self.chol = None
        s, u = np.linalg.eigh(gram)
        s = np.abs(s)
        order = np.argsort(s)[::-1][:rank]
        s, u = s[order], u[:, order]
        with np.errstate(divide="ignore"):
            d = np.where(s > 0, 1.0 / (s + lambda2), 0.0)
        self.c = u * np.sqrt(d)

    def half(self, gt: np.ndarray) -> np.ndarray:
        """``gt @ C``: row blocks ``H_k`` with ``H_k H_k^T = G_k^T N G_k``."""
        if self.chol is None:
            return gt @ self.c
        h = gt.copy()  # L^-1 gt^T in place on the Fortran view of the copy
        return blas.dtrmm(1.0, self.chol_inv, h.T, side=0, lower=1, overwrite_b=1).T

    def apply(self, b: np.ndarray) -> np.ndarray:
        """``N @ b`` for b of shape (r, k)."""
        if self.chol is None:
            return self.c @ (self.c.T @ b)
        return scipy_linalg.cho_solve((self.chol, True), b, check_finite=False)


class _Fit:
    """State of the weight iteration on ``gt`` (see the notes above).

    Sources are split into one contiguous range per worker; each worker forms its
    rows of ``A``, its share of ``G R G^T``, its rows of ``H`` and its sources' new
    weights, with single-threaded BLAS (``linalg.WorkerPool``), so the only
    serial steps are the r x r Cholesky and the sums.
    """

    def __init__(self, gt, n_orient, force_equal, pool):
        self.gt = gt
        self.n_orient = n_orient
        self.n_src = gt.shape[0] // n_orient
        self.full = n_orient == 3 and not force_equal  # 3x3 weight blocks
        self.pool = pool
        self.parts = row_blocks(self.n_src, pool.n_workers)

    def _rows(self, i):
        a, b = self.parts[i]
        return slice(a * self.n_orient, b * self.n_orient)

    def _chunks(self, i):
        """Cache-sized source ranges of worker ``i``."""
        a, b = self.parts[i]
        step = max(16, CHUNK_BYTES // (8 * self.n_orient * self.gt.shape[1]))
        return [(lo, min(lo + step, b)) for lo in range(a, b, step)]

    def normalized_gram(self, g, fac, weights, rank):
        """``g R g^T`` scaled to trace ``rank``; ``fac`` and ``weights`` scaled in place."""

        def gram_part(i):
            gram = np.zeros((g.shape[1], g.shape[1]))
            for lo, hi in self._chunks(i):
                rows = slice(lo * self.n_orient, hi * self.n_orient)
                a = _apply_factor(g[rows], fac[lo:hi] if self.full else fac[rows])
                gram += a.T @ a
            return gram

        gram = np.sum(self.pool.map(gram_part, len(self.parts)), axis=0)
        norm = np.trace(gram) / rank
        gram /= norm
        weights /= norm
        fac /= np.sqrt(norm)
        return gram

    def update(self, gp, noise, std, r_prior, force_equal):
        """New (weights, factor) from ``M_k = G_k^T N G_k`` (before normalisation)."""
        if self.full:
            weights = np.empty((self.n_src, 3, 3))
            fac = np.empty((self.n_src, 3, 3))
        else:
            weights = np.empty(self.gt.shape[0])
            fac = np.empty(self.gt.shape[0])
        std3 = std.reshape(self.n_src, 3) if self.n_orient == 3 else None

        def update_part(i):
            a, b = self.parts[i]
            no = self.n_orient
            m = np.empty((b - a) * no) if no == 1 else np.empty((b - a, 3, 3))
            for lo, hi in self._chunks(i):
                h = noise.half(gp[lo * no : hi * no])
                if no == 1:
                    np.einsum("ij,ij->i", h, h, out=m[lo - a : hi - a])
                else:
                    h3 = h.reshape(hi - lo, 3, -1)
                    np.einsum("vac,vbc->vab", h3, h3, out=m[lo - a : hi - a])
            rows = self._rows(i)
            if no == 1:
                w = 1.0 / np.sqrt(m)
                w *= r_prior[rows]
                weights[rows] = w
                fac[rows] = np.sqrt(w)
                return
            if force_equal:
                s = np.sqrt(_clip_eigenvalues(sym3_eigh(m, vectors=False), 1e-7, True))
                w = np.repeat(1.0 / np.mean(s, axis=-1), 3) * r_prior[rows]
                weights[rows] = w
                fac[rows] = np.sqrt(w)
                return
            s, u = sym3_eigh(m)
            s = _clip_eigenvalues(s, 1e-7, True)
            # M^-1/2 = F F^T with F = U diag(s^-1/4); R = D M^-1/2 D (D = prior std)
            f = std3[a:b, :, None] * (u * (s**-0.25)[:, None, :])
            fac[a:b] = f
            np.matmul(f, f.transpose(0, 2, 1), out=weights[a:b])

        self.pool.map(update_part, len(self.parts))
        return weights, fac


def _fit(gt, n_orient, lambda2, rank, orient_prior, opts, pool):
    """The weight iteration (MNE's ``_compute_eloreta`` loop) on ``gt``.

    Returns
    -------
    result : EloretaResult
    fac : ndarray
        Factor of the final weights (R = F F^T).
    gram : ndarray, shape (r, r)
        ``G R G^T`` of the final weights (trace ``rank``).
    """
    force_equal = bool(opts.force_equal)
    fit = _Fit(gt, n_orient, force_equal, pool)
    n_cols, n_src = gt.shape[0], fit.n_src
    std = np.ones(n_cols) if orient_prior is None else np.sqrt(orient_prior)
    gp = gt * std[:, None]  # gain with the orientation prior
    if fit.full:
        std3 = std.reshape(n_src, 3)
        r_prior = None
        weights = np.zeros((n_src, 3, 3))
        idx = np.arange(3)
        weights[:, idx, idx] = std3**2
        fac = np.zeros((n_src, 3, 3))
        fac[:, idx, idx] = std3
    else:
        r_prior = std**2
        weights = r_prior.copy()
        fac = std.copy()
    gram = fit.normalized_gram(gp, fac, weights, rank)
    delta, n_iter, converged = np.inf, 0, False
    for it in range(int(opts.max_iter)):
        noise = _NoiseInverse(gram, lambda2, rank)
        last = weights
        weights, fac = fit.update(gp, noise, std, r_prior, force_equal)
        gram = fit.normalized_gram(gp, fac, weights, rank)
        delta = float(
            np.linalg.norm(weights.ravel() - last.ravel()) / np.linalg.norm(last.ravel())
        )
        n_iter = it + 1
        if delta < opts.eps:
            converged = True
            break
    del gp
    # normalise the weights for the gain without the orientation prior
    gram = fit.normalized_gram(gt, fac, weights, rank)
    result = EloretaResult(weights=weights, n_iter=n_iter, delta=delta, converged=converged)
    return result, fac, gram


def _nonzero_rows(g: np.ndarray) -> np.ndarray:
    """Rows of ``g`` that are not identically zero."""
    return np.flatnonzero(np.any(g != 0, axis=1))


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
    g = np.asarray(gain_white, dtype=np.float64)
    gt = np.ascontiguousarray(g[_nonzero_rows(g)].T)
    with WorkerPool(gt.size) as pool:
        result, _, _ = _fit(gt, n_orient, lambda2, rank, orient_prior, opts, pool)
    return result


def compute_eloreta_kernel(inv, lambda2: float, white_proj: np.ndarray, sqrt_nave: float, options):
    """eLORETA imaging kernel in the operator's frame (used by ``prepare_inverse``).

    ``K = R G^T (G R G^T + lambda2 I)^+ W P`` with the fitted weights R, which is
    MNE's ``R^1/2 V diag(s / (s^2 + lambda2)) U^T W P`` from the SVD of
    ``G R^1/2``, without that SVD (the Cholesky factor of the last iteration's
    ``G R G^T + lambda2 I`` is reused).

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
    rows = np.flatnonzero(np.asarray(inv.noise_eig) > 0)
    gt = np.ascontiguousarray(inv.gain_white[rows].T)
    gt *= sqrt_nave
    with WorkerPool(gt.size) as pool:
        res, _, gram = _fit(gt, inv.n_orient, lambda2, inv.rank, inv.orient_prior, opts, pool)
        # rows G_k^T N W P, then the weights R_k applied per source
        y = _NoiseInverse(gram, lambda2, inv.rank).apply(white_proj[rows])
        r = res.weights
        kernel = np.empty((gt.shape[0], y.shape[1]))
        parts = row_blocks(r.shape[0], pool.n_workers)
        step = 3 if r.ndim == 3 else 1

        def kernel_part(i):
            a, b = parts[i]
            k = gt[a * step : b * step] @ y
            if r.ndim == 1:
                k *= r[a:b, None]
            else:
                k = np.matmul(r[a:b], k.reshape(b - a, 3, -1)).reshape(k.shape)
            kernel[a * step : b * step] = k

        pool.map(kernel_part, len(parts))
    info = {
        "n_iter": res.n_iter,
        "delta": res.delta,
        "converged": res.converged,
        "force_equal": bool(opts.force_equal),
    }
    return kernel, info
