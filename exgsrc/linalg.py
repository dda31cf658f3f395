"""Linear-algebra helpers shared by the inverse solvers.

Covariance validation, rank estimation and whitening of average-referenced EEG,
following the conventions of MNE-Python (``mne.cov.compute_whitener`` with
``pca='white'`` and an average-reference projector).

All functions take plain numpy arrays (volts, volts squared) or any object with
``.data`` and ``.ch_names`` attributes (such as :class:`exgsrc.covariance.NoiseCov`).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from scipy import linalg as scipy_linalg

from ._system import thread_budget

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
    "svd_gram",
    "sym3_eigh",
    "row_blocks",
    "run_workers",
    "WorkerPool",
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


def svd_gram(
    at: np.ndarray,
    row_scale: np.ndarray | None = None,
    out: np.ndarray | None = None,
    pool: WorkerPool | None = None,
):
    """Economy SVD of a wide matrix ``a``, given as its tall transpose, via the Gram matrix.

    For ``a = (row_scale[:, None] * at).T`` of shape (m, n), ``m <= n``
    (channels x source components): ``a a^T`` (symmetric products over
    cache-sized row chunks, m^2 n flops), an m x m ``eigh`` giving ``u``, then
    ``v = at_scaled @ u`` (2 m^2 n flops) with each column divided by its norm,
    which is taken as the singular value. The row scaling (source weights) is
    applied chunk by chunk, so the weighted matrix is never stored. LAPACK's
    ``gesdd`` on the same matrix does ~6 m^2 n flops, much of it in
    memory-bound QR panels, and is 5-15x slower here (benchmarks/README.md).

    Precision. ``u`` is orthonormal and ``u @ diag(s) @ v.T`` reproduces ``a``
    to rounding (``u u^T = I``), whatever the conditioning. The singular values
    ``s_i = ||a^T u_i||`` are accurate to ``~eps * s_max**2 / s_i`` (the Gram
    matrix squares the condition number; LAPACK: ``~eps * s_max``), and the
    columns of ``v`` belonging to values below ``~sqrt(eps) * s_max`` are unit
    vectors but not mutually orthogonal. Every regularised product built from
    the factors, ``sum_i v_i f(s_i) u_i^T`` with ``f(s) = s / (s**2 + lambda2)``,
    equals ``a^T u diag(1 / (s**2 + lambda2)) u^T`` and is as accurate as with a
    LAPACK SVD (error ~ eps * s_max**2 / lambda2, relative): minimum-norm
    kernels, dSPM/sLORETA noise normalisation and SNR estimates do not see the
    difference (tests/test_linalg.py, tests/test_inverse.py).

    Parameters
    ----------
    at : ndarray, shape (n, m)
        The transposed wide matrix, ``n >= m`` (rows may be strided, e.g. a
        column slice of a wider array).
    row_scale : ndarray, shape (n,) | None
        Scale of each row of ``at`` (None: 1).
    out : ndarray, shape (n, k), k >= m | None
        Optional C-ordered output for ``v``: its first ``m`` columns receive
        ``v``, the others are left alone.
    pool : WorkerPool | None
        Workers to share the row blocks (default: a pool sized for ``at``).

    Returns
    -------
    u : ndarray, shape (m, m)
        Left singular vectors (columns) of ``a``.
    s : ndarray, shape (m,)
        Singular values, descending; exactly 0 for columns of ``at @ u`` that are
        exactly zero.
    v : ndarray, shape (n, m)
        Right singular vectors (columns), unit norm (zero where ``s == 0``); a
        view of ``out`` when given.
    """
    n, m = at.shape
    if m > n:
        raise ValueError(f"svd_gram needs a tall matrix (the wide one transposed), got {at.shape}")
    with nullcontext(pool) if pool is not None else WorkerPool(at.size) as pool:
        parts = row_blocks(n, pool.n_workers)
        chunk = max(64, CHUNK_BYTES // (8 * m))

        def gram_part(i):
            g = np.zeros((m, m))
            for lo in range(parts[i][0], parts[i][1], chunk):
                hi = min(lo + chunk, parts[i][1])
                x = at[lo:hi] if row_scale is None else at[lo:hi] * row_scale[lo:hi, None]
                g += x.T @ x
            return g

        gram = np.sum(pool.map(gram_part, len(parts)), axis=0)
        _, u = scipy_linalg.eigh(gram, overwrite_a=True, check_finite=False)
        u = np.ascontiguousarray(u[:, ::-1])
        v = np.empty((n, m)) if out is None else out[:, :m]

        def v_part(i):
            lo, hi = parts[i]
            np.matmul(at[lo:hi], u, out=v[lo:hi])
            if row_scale is not None:
                v[lo:hi] *= row_scale[lo:hi, None]
            return np.einsum("ij,ij->j", v[lo:hi], v[lo:hi])

        s = np.sqrt(np.sum(pool.map(v_part, len(parts)), axis=0))
        inv_s = np.zeros_like(s)
        inv_s[s > 0] = 1.0 / s[s > 0]

        def scale_part(i):
            v[parts[i][0] : parts[i][1]] *= inv_s

        pool.map(scale_part, len(parts))
    order = np.argsort(-s, kind="stable")
    if np.any(order != np.arange(m)):
        u, s = u[:, order], s[order]
        v[...] = v[:, order]
    return u, s, v


def sym3_eigh(a: np.ndarray, vectors: bool = True, max_sweeps: int = 12):
    """Eigen-decomposition of many symmetric 3x3 matrices (vectorised cyclic Jacobi).

    Same results as ``numpy.linalg.eigh`` to ~1e-15 relative (Jacobi rotations
    are backward stable and accurate to the matrix norm; positive semi-definite
    input keeps its small eigenvalues to high relative accuracy), 4-5x faster for
    10 000 matrices since the rotations run as whole-array operations instead of
    one LAPACK call per matrix.

    Parameters
    ----------
    a : ndarray, shape (..., 3, 3)
        Symmetric matrices; only the upper triangle is read.
    vectors : bool
        Also return the eigenvectors.
    max_sweeps : int
        Cap on the sweeps (3 rotations each); 4-6 reach convergence
        (off-diagonal norm below ``eps * ||a||_F``).

    Returns
    -------
    w : ndarray, shape (..., 3)
        Eigenvalues, ascending.
    v : ndarray, shape (..., 3, 3)
        Eigenvectors as columns (``v[..., :, i]`` belongs to ``w[..., i]``);
        only when ``vectors``.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 3, 3) matrices, got shape {a.shape}")
    batch = a.shape[:-2]
    flat = a.reshape(-1, 9)
    n = flat.shape[0]
    d = np.ascontiguousarray(flat[:, [0, 4, 8]].T)  # diagonal (3, n)
    o = np.ascontiguousarray(flat[:, [1, 2, 5]].T)  # a01, a02, a12
    # scale each matrix to max |entry| 1 (no overflow in the squares below)
    scale = np.maximum(np.abs(d).max(axis=0), np.abs(o).max(axis=0))
    scale[~(scale > 0)] = 1.0
    d /= scale
    o /= scale
    v = None
    if vectors:
        v = np.zeros((3, 3, n))
        v[0, 0] = v[1, 1] = v[2, 2] = 1.0
    tol = np.finfo(np.float64).eps ** 2 * (
        np.einsum("ij,ij->j", d, d) + 2.0 * np.einsum("ij,ij->j", o, o)
    )
    # rotation (p, q), third index k; rows of o holding a_pq, a_kp, a_kq
    plan = ((0, 1, 0, 1, 2), (0, 2, 1, 0, 2), (1, 2, 2, 0, 1))
    t = np.empty(n)
    c = np.empty(n)
    s = np.empty(n)
    tmp = np.empty(n)
    for _ in range(int(max_sweeps)):
        if not np.any(np.einsum("ij,ij->j", o, o) > tol):
            break
        for p, q, i_pq, i_kp, i_kq in plan:
            apq = o[i_pq]
            diff = d[q] - d[p]
            # t = tan(theta) of the smaller rotation zeroing a_pq
            np.multiply(apq, apq, out=tmp)
            tmp *= 4.0
            tmp += diff * diff
            np.sqrt(tmp, out=tmp)
            np.copysign(tmp, diff, out=tmp)
            tmp += diff
            t.fill(0.0)
            np.divide(apq, tmp, out=t, where=tmp != 0)
            t *= 2.0
            np.multiply(t, t, out=c)
            c += 1.0
            np.sqrt(c, out=c)
            np.divide(1.0, c, out=c)
            np.multiply(t, c, out=s)
            t *= apq
            d[p] -= t
            d[q] += t
            apq.fill(0.0)
            kp = o[i_kp].copy()
            kq = o[i_kq]
            o[i_kp] = c * kp - s * kq
            o[i_kq] = s * kp + c * kq
            if vectors:
                vp = v[:, p].copy()
                vq = v[:, q]
                v[:, p] = c * vp - s * vq
                v[:, q] = s * vp + c * vq
    d *= scale
    order = np.argsort(d, axis=0)
    w = np.take_along_axis(d, order, axis=0).T.reshape(batch + (3,))
    if not vectors:
        return w
    vec = np.take_along_axis(v, order[None], axis=1)  # (row, column, n)
    return w, np.ascontiguousarray(vec.transpose(2, 0, 1)).reshape(batch + (3, 3))


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


# ---------------------------------------------------------------------------
# row-block parallelism
#
# OpenBLAS's own threads split the *output* of a product and meet at barriers
# where idle threads spin; on a shared, oversubscribed machine (more runnable
# threads than cores) a descheduled BLAS thread stalls the others, and products
# with a small output (the r x r Gram of a tall matrix: 64 x 64 from 64 x 30 726)
# ran 5-20x slower with 2 BLAS threads than with one (benchmarks/README.md).
# Here each worker owns a contiguous block of rows of the tall operand and runs
# single-threaded BLAS on it; the only synchronisation is the join.

# Products touching fewer values than this run on the calling thread.
PARALLEL_MIN_VALUES = 500_000
# Row chunks of about this size stay in the (L2/L3) cache between the steps
# applied to them.
CHUNK_BYTES = 1 << 20


def run_workers(run, n_workers: int) -> None:
    """Call ``run(worker)`` for ``worker in range(n_workers)``, on threads when several.

    Each thread runs single-threaded BLAS: the workers replace BLAS's own
    threading (pass ``n_workers`` from :func:`exgsrc._system.thread_budget`,
    which is 1 inside another worker, so nested calls run serially).

    Parameters
    ----------
    run : callable
        ``run(worker_index)``; exceptions propagate.
    n_workers : int
    """
    if n_workers <= 1:
        run(0)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(run, range(n_workers)))


def row_blocks(n_rows: int, n_parts: int, align: int = 1) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` row ranges, boundaries on multiples of ``align``.

    Parameters
    ----------
    n_rows : int
        Multiple of ``align``.
    n_parts : int
    align : int
        E.g. 3 so that the three rows of a source stay together.

    Returns
    -------
    list of (int, int)
        Non-empty ranges covering ``range(n_rows)``.
    """
    units = n_rows // align
    n_parts = max(1, min(int(n_parts), units))
    bounds = (np.linspace(0, units, n_parts + 1).round().astype(int) * align).tolist()
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _n_workers(values: int, n_workers: int | None) -> int:
    if n_workers is None:
        n_workers = 1 if values < PARALLEL_MIN_VALUES else thread_budget()
    return max(1, int(n_workers))


class WorkerPool:
    """Reusable workers for several parallel phases (one thread pool, BLAS at 1 thread).

    ``with WorkerPool(values) as pool: pool.map(fn, n)`` calls ``fn(i)`` for
    ``i in range(n)`` and returns the results in order; with one worker (small
    problems, or a BLAS limit of 1) everything runs on the calling thread and
    BLAS keeps its own threading.

    Parameters
    ----------
    values : int
        Size of the work (number of matrix entries); below
        ``PARALLEL_MIN_VALUES`` one worker is used.
    n_workers : int | None
        Force a worker count.
    """

    def __init__(self, values: int, n_workers: int | None = None):
        self.n_workers = _n_workers(values, n_workers)
        self._pool = None
        self._limits = nullcontext()

    def __enter__(self):
        if self.n_workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(1, user_api="blas")
            self._pool = ThreadPoolExecutor(self.n_workers)
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown()
            self._limits.__exit__(*exc)
        return False

    def map(self, fn, n: int) -> list:
        """``[fn(i) for i in range(n)]``, in parallel when there are workers.

        Parameters
        ----------
        fn : callable
            ``fn(i)``; exceptions propagate.
        n : int
            Number of calls.

        Returns
        -------
        list
            The results, in order.
        """
        if self._pool is None:
            return [fn(i) for i in range(n)]
        return list(self._pool.map(fn, range(n)))
