"""Source priors of the minimum-norm operators: depth weighting.

MNE-Python's depth prior (``mne.forward.compute_depth_prior``, EEG only): each
source's variance is multiplied by ``(1 / ||G_k||^2) ** exp``, with the weights
clipped at ``limit**2`` times the smallest one (Lin et al. 2006, NeuroImage 31:160;
MNE's "limit" rule). For free orientations ``||G_k||`` is the spectral norm of the
source's 3-column block. Used by :func:`exgsrc.inverse.make_inverse_operator`.
"""

from __future__ import annotations

import numpy as np

from .linalg import sym3_eigh

__all__ = ["compute_depth_prior"]


def compute_depth_prior(
    gain: np.ndarray, n_orient: int, exp: float = 0.8, limit: float | None = 10.0
) -> np.ndarray:
    """Depth-weighting prior as MNE-Python's ``compute_depth_prior`` (EEG only).

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources * n_orient)
        Unwhitened gain (V/(A·m)); free gains in x, y, z source-major columns.
    n_orient : int
        1 (fixed) or 3 (free; the squared spectral norm of each 3-column block
        is used).
    exp : float
        Exponent (>= 0).
    limit : float | None
        Ratio limit on the weights (MNE default 10); None for no limit.

    Returns
    -------
    prior : ndarray, shape (n_sources * n_orient,)
        Source variance multipliers (dimensionless relative), repeated over the
        orientations for ``n_orient == 3``.
    """
    g = np.asarray(gain, dtype=np.float64)
    return _depth_prior_rows(np.ascontiguousarray(g.T), n_orient, exp, limit)


def _depth_prior_rows(
    gain_t: np.ndarray, n_orient: int, exp: float, limit: float | None
) -> np.ndarray:
    """:func:`compute_depth_prior` from the transposed gain (one row per source component)."""
    if n_orient == 1:
        d = np.einsum("vc,vc->v", gain_t, gain_t)
    else:
        g3 = gain_t.reshape(-1, 3, gain_t.shape[1])
        # largest eigenvalue of each source's 3x3 G_k^T G_k (= squared spectral norm)
        d = sym3_eigh(np.matmul(g3, g3.transpose(0, 2, 1)), vectors=False)[:, -1]
    prior = _depth_prior_from_norms(d, exp, limit, fix_zeros=n_orient == 1)
    if n_orient == 3:
        prior = np.repeat(prior, 3)
    return prior


def _depth_prior_from_norms(
    d: np.ndarray, exp: float, limit: float | None, fix_zeros: bool
) -> np.ndarray:
    """Depth prior per source from its squared gain norm ``d`` (MNE's limit and exponent).

    ``fix_zeros``: zero norms take the smallest nonzero one (MNE does this for
    fixed-orientation gains only).
    """
    d = np.array(d, dtype=np.float64)
    if fix_zeros and np.any(d == 0):
        d[d == 0.0] = np.min(d[d != 0.0])
    w = 1.0 / d
    if limit is not None:
        ws = np.sort(w)
        weight_limit = float(limit) ** 2
        lim = ws[-1]
        if ws[-1] > weight_limit * ws[0]:
            ind = np.where(ws > weight_limit * ws[0])[0][0]
            lim = ws[ind]
        w = np.minimum(w / lim, 1.0)
    return w**exp


def _parse_depth(depth):
    if depth is None:
        return None
    if isinstance(depth, dict):
        unknown = set(depth) - {"exp", "limit"}
        if unknown:
            raise ValueError(f"depth dict has unknown keys {sorted(unknown)}; use exp, limit")
        exp = depth.get("exp", 0.8)
        limit = depth.get("limit", 10.0)
    else:
        exp, limit = depth, 10.0
    if exp is None:
        return None
    exp = float(exp)
    if not np.isfinite(exp) or exp < 0:
        raise ValueError(f"depth exponent must be >= 0, got {exp!r}")
    if exp == 0:
        return None
    if limit is not None:
        limit = float(limit)
        if not limit > 0:
            raise ValueError(f"depth limit must be positive or None, got {limit!r}")
    return {"exp": exp, "limit": limit}
