"""Linear-algebra helpers shared by the inverse solvers.

Covariance validation, rank estimation and whitening of average-referenced EEG,
following the conventions of MNE-Python (``mne.cov.compute_whitener`` with
``pca='white'`` and an average-reference projector).

All functions take plain numpy arrays (volts, volts squared) or any object with
``.data`` and ``.ch_names`` attributes (such as :class:`exgsrc.covariance.NoiseCov`).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg as scipy_linalg

__all__ = [
    "average_reference_projector",
    "check_covariance",
    "compute_rank",
    "compute_whitener",
    "whitener_from_eig",
    "eigh_whitening",
    "normal_tangent_basis",
    "regularized_inverse_singular_values",
    "svd_economy",
]


def average_reference_projector(n_channels: int) -> np.ndarray:
    """Projector onto the average-referenced subspace.

    Parameters
    ----------
    n_channels : int
        Number of EEG channels.

    Returns
    -------
    proj : ndarray, shape (n_channels, n_channels)
        ``I - 1 1^T / n_channels`` (dimensionless), symmetric and idempotent.
    """
    n = int(n_channels)
    if n < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels!r}")
    proj = np.full((n, n), -1.0 / n)
    proj.flat[:: n + 1] += 1.0
    return proj


def _cov_array(cov) -> np.ndarray:
    data = getattr(cov, "data", cov)
    return np.asarray(data, dtype=np.float64)


def check_covariance(cov, name: str = "noise_cov") -> np.ndarray:
    """Validate a covariance matrix and return it as a float64 array.

    Parameters
    ----------
    cov : ndarray, shape (n_channels, n_channels) | NoiseCov
        Covariance in V**2.
    name : str
        Name used in error messages.

    Returns
    -------
    data : ndarray, shape (n_channels, n_channels)
        The validated matrix.

    Raises
    ------
    ValueError
        If the matrix is not square, contains NaN/inf, is not symmetric or is
        not positive semi-definite (an eigenvalue below ``-1e-10`` times the
        largest one).
    """
    c = _cov_array(cov)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"{name} must be a square 2D matrix, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name} contains NaN or infinite values")
    scale = np.max(np.abs(c)) if c.size else 0.0
    if scale == 0:
        raise ValueError(f"{name} is all zeros")
    asym = np.max(np.abs(c - c.T))
    if asym > 1e-10 * scale:
        raise ValueError(
            f"{name} is not symmetric (max |C - C^T| = {asym:.3g}, max |C| = {scale:.3g})"
        )
    c = (c + c.T) / 2.0
    eig = np.linalg.eigvalsh(c)
    if eig[0] < -1e-10 * max(eig[-1], 0.0) or eig[-1] <= 0:
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {eig[0]:.3g}, "
            f"largest {eig[-1]:.3g})"
        )
    return c


def compute_rank(cov, rank: int | None = None, avg_ref: bool = True, tol="auto") -> int:
    """Numerical rank of an EEG noise covariance, as MNE-Python estimates it.

    The matrix is first projected with the average-reference projector
    (``P C P``, when ``avg_ref``), then its singular values ``s`` are compared
    with ``n_channels * max(s) * eps`` (``tol='auto'``, MNE's default) or with
    ``tol * max(s)`` for a float ``tol``.

    Parameters
    ----------
    cov : ndarray, shape (n_channels, n_channels) | NoiseCov
        Covariance in V**2.
    rank : int | None
        If given, validated (1 <= rank <= n_channels, and at most
        ``n_channels - 1`` with ``avg_ref``) and returned unchanged.
    avg_ref : bool
        Apply the average-reference projector first.
    tol : 'auto' | float
        Threshold, see above.

    Returns
    -------
    rank : int
    """
    c = _cov_array(cov)
    n = c.shape[0]
    max_rank = n - 1 if avg_ref else n
    if rank is not None:
        if isinstance(rank, bool) or int(rank) != rank or not 1 <= int(rank) <= max_rank:
            raise ValueError(
                f"rank must be an integer in [1, {max_rank}] for {n} channels"
                f"{' with average reference' if avg_ref else ''}, got {rank!r}"
            )
        return int(rank)
    if avg_ref:
        p = average_reference_projector(n)
        c = p @ c @ p
    s = np.linalg.svd(c, compute_uv=False)
    if isinstance(tol, str):
        if tol != "auto":
            raise ValueError(f"tol must be 'auto' or a float, got {tol!r}")
        thresh = n * s[0] * np.finfo(np.float64).eps
    else:
        thresh = float(tol) * s[0]
    return int(np.sum(s > thresh))


def eigh_whitening(cov, rank: int | None = None, avg_ref: bool = True):
    """Eigen-decomposition of the (projected) covariance with small eigenvalues zeroed.

    Parameters
    ----------
    cov : ndarray, shape (n_channels, n_channels) | NoiseCov
        Covariance in V**2 (validated with :func:`check_covariance`).
    rank : int | None
        Rank to keep; ``None`` estimates it with :func:`compute_rank`.
    avg_ref : bool
        Project with the average-reference projector before decomposing.

    Returns
    -------
    eig : ndarray, shape (n_channels,)
        Eigenvalues in ascending order (V**2); the ``n_channels - rank``
        smallest are set to exactly 0.
    eigvec : ndarray, shape (n_channels, n_channels)
        Eigenvectors as **rows** (``eigvec[k]`` belongs to ``eig[k]``).
    rank : int
    """
    c = check_covariance(cov)
    n = c.shape[0]
    if avg_ref:
        p = average_reference_projector(n)
        c = p @ c @ p
    rank = compute_rank(c, rank, avg_ref=avg_ref)
    eig, vec = np.linalg.eigh(c)
    eig = eig.copy()
    eig[: n - rank] = 0.0
    eig[eig < 0] = 0.0
    return eig, vec.T.copy(), rank


def whitener_from_eig(eig: np.ndarray, eigvec: np.ndarray) -> np.ndarray:
    """Whitener ``C^(-1/2)`` in the eigenbasis ("white" space).

    Parameters
    ----------
    eig : ndarray, shape (n_channels,)
        Eigenvalues (V**2), zeros for the discarded directions.
    eigvec : ndarray, shape (n_channels, n_channels)
        Eigenvectors as rows.

    Returns
    -------
    W : ndarray, shape (n_channels, n_channels)
        ``W[k] = eigvec[k] / sqrt(eig[k])`` (1/V), rows of zero eigenvalues are 0.
    """
    inv_sqrt = np.zeros_like(eig)
    nz = eig > 0
    inv_sqrt[nz] = 1.0 / np.sqrt(eig[nz])
    return inv_sqrt[:, None] * eigvec


def compute_whitener(cov_data, rank: int | None = None, avg_ref: bool = True):
    """Whitening matrix for (average-referenced) EEG.

    Equivalent to MNE-Python's ``compute_whitener(..., pca='white')`` for an
    EEG covariance with an average-reference projector: the covariance is
    projected (``P C P``), eigen-decomposed, eigenvalues beyond the rank are
    zeroed and the whitener is ``diag(1/sqrt(eig)) @ eigvec`` with zero rows
    for the discarded directions. No singular matrix is ever inverted.

    Parameters
    ----------
    cov_data : ndarray, shape (n_channels, n_channels) | NoiseCov
        Noise covariance (V**2).
    rank : int | None
        Rank of the covariance; ``None`` estimates it as MNE does.
    avg_ref : bool
        Model average-referenced data (default ``True``).

    Returns
    -------
    W : ndarray, shape (n_channels, n_channels)
        Whitener (1/V); ``W @ C @ W.T`` is the identity on the first ``rank``
        (non-zero) rows.
    rank : int
        Rank used.
    """
    eig, eigvec, rank = eigh_whitening(cov_data, rank=rank, avg_ref=avg_ref)
    return whitener_from_eig(eig, eigvec), rank


def normal_tangent_basis(nn: np.ndarray) -> np.ndarray:
    """Orthonormal local frames whose third axis is the source normal.

    Parameters
    ----------
    nn : ndarray, shape (n_sources, 3)
        Source normals (normalised internally).

    Returns
    -------
    basis : ndarray, shape (n_sources, 3, 3)
        ``basis[i]`` has rows ``(t1, t2, n)``: two tangential unit vectors and the
        unit normal, a right-handed orthonormal frame.

    Raises
    ------
    ValueError
        If a normal is zero or not finite.
    """
    nn = np.asarray(nn, dtype=np.float64)
    norms = np.linalg.norm(nn, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if np.any(bad):
        raise ValueError(
            f"source normals are zero or not finite at sources {np.where(bad)[0][:10]}"
        )
    n = nn / norms[:, None]
    # helper axis: the coordinate axis least aligned with the normal
    helper = np.zeros_like(n)
    helper[np.arange(len(n)), np.argmin(np.abs(n), axis=1)] = 1.0
    t1 = np.cross(helper, n)
    t1 /= np.linalg.norm(t1, axis=1)[:, None]
    t2 = np.cross(n, t1)
    return np.stack([t1, t2, n], axis=1)


def svd_economy(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Economy SVD ``a = u @ diag(s) @ vt``.

    The gains here are wide (channels x 3 sources) and LAPACK is faster on the
    tall transpose (operator construction in benchmarks/bench_inverse.py);
    ``a.T = vt.T s u.T`` gives the same factors (a singular pair's signs may flip
    together, which no product ``u_i s_i v_i`` and no kernel built from them sees).

    Parameters
    ----------
    a : ndarray, shape (m, n)

    Returns
    -------
    u : ndarray, shape (m, k)
    s : ndarray, shape (k,)
        Singular values, descending; ``k = min(m, n)``.
    vt : ndarray, shape (k, n)
    """
    if a.shape[0] < a.shape[1]:
        v, s, ut = svd_economy(np.ascontiguousarray(a.T))
        return ut.T, s, v.T
    try:
        return scipy_linalg.svd(a, full_matrices=False, lapack_driver="gesdd")
    except np.linalg.LinAlgError:  # pragma: no cover - gesdd rarely fails
        return scipy_linalg.svd(a, full_matrices=False, lapack_driver="gesvd")


def regularized_inverse_singular_values(sing: np.ndarray, rank: int, lambda2: float) -> np.ndarray:
    """Tikhonov-filtered inverse singular values ``s / (s**2 + lambda2)``.

    Parameters
    ----------
    sing : ndarray, shape (k,)
        Singular values of the whitened, weighted gain.
    rank : int
        Number of leading values kept (the whitened data's rank); the rest are 0.
    lambda2 : float
        Regularisation parameter (``1 / SNR**2``).

    Returns
    -------
    ndarray, shape (k,)
    """
    out = np.zeros_like(sing)
    s = sing[:rank]
    out[:rank] = np.where(s > 0, s / (s**2 + lambda2), 0.0)
    return out
