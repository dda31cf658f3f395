"""Cohort statistics in source space: t-tests and permutation tests.

Data are source estimates of a cohort, one map per subject, laid out as MNE's
``spatio_temporal`` functions want them: ``X`` of shape
``(n_subjects, n_times, n_sources)`` (observations x time x space). For a
paired design (two conditions per subject) test the per-subject difference,
:func:`paired_difference`.

Tests
-----
* :func:`ttest_1samp` / :func:`ttest_paired` -- t-values, optionally with the
  "hat" variance regularisation of Ridgway et al. (2012), NeuroImage 59
  (``sigma``; MNE's ``ttest_1samp_no_p``).
* :func:`cluster_permutation_test` -- spatio-temporal cluster-based
  permutation test (Maris & Oostenveld 2007, J. Neurosci. Methods 164): the
  t-map is thresholded, supra-threshold (time, source) points of the same sign
  are joined when they are adjacent sources at the same time or the same
  source at neighbouring times, and each cluster's mass (sum of t) is compared
  with the distribution of the largest cluster mass over sign-flip
  permutations (exchangeability of the sign of each subject's map under H0).
* :func:`tfce_permutation_test` -- threshold-free cluster enhancement (Smith &
  Nichols 2009, NeuroImage 44): every point scores
  ``sum_h e(h)**E * h**H * dh`` over a ladder of thresholds ``h``, ``e(h)``
  the size of its cluster at ``h``; p-values per point from the largest score
  over permutations.
* :func:`tmax_permutation_test` -- per-point p-values corrected with the
  maximum |t| over all points (Nichols & Holmes 2002, Hum. Brain Mapp. 15).
* :func:`fdr_correction` -- Benjamini-Hochberg (and Benjamini-Yekutieli).

Parity with MNE-Python
----------------------
The numbers are those of ``mne.stats.spatio_temporal_cluster_1samp_test`` /
``permutation_cluster_1samp_test`` (``adjacency=`` given, ``max_step``,
``t_power``, TFCE ``threshold=dict(start=, step=)``), ``permutation_t_test``,
``ttest_1samp_no_p`` and ``fdr_correction`` (MNE 1.13):

* the same sign-flip sets: exhaustive when ``2**(n_subjects - (tail == 0)) <=
  n_permutations`` (for a two-tailed test, half of the flips suffice: a flip
  and its mirror give the same |statistic|), else drawn from
  ``numpy.random.default_rng(seed)`` exactly as MNE draws them from
  ``rng=seed``, so a seeded run reproduces MNE's permutations too;
* the same null distribution ``h0``: the observed maximum first, then one
  maximum per flip (the largest |cluster mass| with its sign; 0 when a flip
  has no cluster); p-values are the fraction of ``h0`` at least as extreme as
  each cluster's statistic, the observed one included;
* the same TFCE ladder ``numpy.arange(start, max|t|, step)`` and increments
  ``|h|**H * dh * size**E`` with ``dh = |start|`` for the first step.

Deliberate differences: sign flips whose signs are all equal (the identity,
or all subjects flipped) use the observed t-map exactly (mathematically the
same map; MNE recomputes it with a different rounding, so whether it counts
as ">=" the observed statistic is down to the last bit there); TFCE with
``tail=-1`` gives the p-values of ``tail=1`` on ``-X`` (MNE 1.13 compares
its positive tail -1 scores with ``<=`` and puts the smallest observed score
first in ``h0``, so its tail -1 TFCE p-values are inverted). MNE releases
before 1.13 summed other TFCE increments.

Speed (the permutation loop)
----------------------------
For a batch of ``B`` sign vectors ``s`` (``B x n``) the subject sums of all
flipped maps at one time point are one matrix product ``s @ X[:, t, :]``;
the sum of squares is invariant under sign flips, so t follows without
touching the data again, and ``|t| > thr`` is ``sum**2 > c * sumsq`` (no
square root or division over the whole map; the candidates' t-values are
then computed exactly). Only supra-threshold points enter the graph: their
same-sign neighbours (adjacent sources at the same time, the same source
``1..max_step`` samples earlier) are found by index arithmetic in a small
ring buffer of node ids, and the clusters of all ``B`` flips are labelled by
one :func:`scipy.sparse.csgraph.connected_components` call. Batches run in
``exgsrc._system.thread_budget()`` threads with single-threaded BLAS; memory
per batch is bounded by ``max_batch_bytes``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ._system import thread_budget

__all__ = [
    "ClusterTestResult",
    "TFCETestResult",
    "TmaxTestResult",
    "ttest_1samp",
    "ttest_paired",
    "paired_difference",
    "t_threshold",
    "source_adjacency",
    "sign_flips",
    "cluster_permutation_test",
    "tfce_permutation_test",
    "tmax_permutation_test",
    "fdr_correction",
]

_DEFAULT_BATCH_BYTES = 512 * 2**20
# bytes per supra-threshold node in a batch: value, position, id in two time
# slices, a few edges in int32, and connected_components' CSR and labels
_BYTES_PER_NODE = 96
# TFCE keeps more per node: edge heights, and each step's shrinking copies
_BYTES_PER_NODE_TFCE = 320
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


# --------------------------------------------------------------------------- adjacency


def source_adjacency(src, distance: float | None = None):
    """Spatial adjacency of the sources of a source space.

    Parameters
    ----------
    src : SourceSpace
        From :mod:`exgsrc.source_space`.
    distance : float | None
        If given, sources closer than or at ``distance`` metres are
        neighbours (any source space). If None: a surface with triangles uses
        its triangle edges (as ``mne.spatial_tris_adjacency``); a volume grid
        made by :func:`~exgsrc.source_space.grid_source_space` uses its grid
        step, giving the 6 face neighbours; other source spaces need
        ``distance``.

    Returns
    -------
    adjacency : scipy.sparse.csr_array, shape (n_sources, n_sources)
        Symmetric, int8 ones for neighbours, empty diagonal.
    """
    n = src.n_sources
    if distance is None:
        if src.tris is not None:
            tris = np.asarray(src.tris, np.int64)
            if tris.size and (tris.min() < 0 or tris.max() >= n):
                raise ValueError(
                    f"source space triangles index vertices outside 0..{n - 1} "
                    f"(min {tris.min()}, max {tris.max()})"
                )
            a = tris[:, [0, 1, 2]].ravel()
            b = tris[:, [1, 2, 0]].ravel()
            rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        elif src.kind == "volume" and "spacing" in src.meta:
            return source_adjacency(src, distance=float(src.meta["spacing"]) * (1 + 1e-6))
        else:
            raise ValueError(
                f"a {src.kind!r} source space without triangles needs distance= (m) "
                "to define neighbours"
            )
    else:
        from scipy.spatial import cKDTree

        distance = float(distance)
        if not np.isfinite(distance) or distance <= 0:
            raise ValueError(f"distance must be a positive number (m), got {distance!r}")
        pairs = cKDTree(src.pos).query_pairs(distance, output_type="ndarray")
        rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
        cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    keep = rows != cols
    adj = sparse.coo_array(
        (np.ones(int(keep.sum()), np.int8), (rows[keep], cols[keep])), shape=(n, n)
    ).tocsr()
    adj.sum_duplicates()
    adj.data[:] = 1  # shared edges of two triangles were summed
    return adj


class _SourceGraph:
    """A spatial adjacency prepared for index arithmetic.

    Only the neighbours ``s' > s`` of each source ``s`` are kept (one
    direction per undirected edge is enough for connected components):
    ``indices[indptr[s]:indptr[s + 1]]``. When the degrees are even enough
    (surfaces, grids) they are also padded into a table ``padded`` of shape
    ``(n_sources, max_degree)`` whose empty places hold ``n_sources``, a
    sentinel source that is never supra-threshold.
    """

    def __init__(self, adjacency, n_sources: int):
        if not sparse.issparse(adjacency):
            raise ValueError(
                "adjacency must be a scipy.sparse matrix or array of shape "
                f"(n_sources, n_sources) = ({n_sources}, {n_sources}); "
                "see source_adjacency(src)"
            )
        if adjacency.shape != (n_sources, n_sources):
            raise ValueError(
                f"adjacency has shape {adjacency.shape}, the data have {n_sources} sources; "
                f"expected ({n_sources}, {n_sources}) (spatial adjacency only: time "
                "neighbours are added by the test)"
            )
        a = sparse.coo_array(adjacency)
        nz = a.data != 0
        r, c = a.row[nz].astype(np.int64), a.col[nz].astype(np.int64)
        lo, hi = np.minimum(r, c), np.maximum(r, c)
        keep = lo != hi
        up = sparse.csr_array(
            (np.ones(int(keep.sum()), np.int8), (lo[keep], hi[keep])), shape=a.shape
        )
        up.sum_duplicates()
        up.sort_indices()
        self.n_sources = n_sources
        self.indptr = up.indptr.astype(np.int64)
        self.indices = up.indices.astype(np.int64)
        self.degree = np.diff(self.indptr)
        max_degree = int(self.degree.max()) if n_sources else 0
        self.padded = None
        if 0 < max_degree <= 2 * self.degree.mean() + 2:
            rows = np.repeat(np.arange(n_sources), self.degree)
            place = np.arange(self.indices.size) - np.repeat(self.indptr[:-1], self.degree)
            self.padded = np.full((n_sources, max_degree), n_sources, np.int64)
            self.padded[rows, place] = self.indices


# --------------------------------------------------------------------------- sign flips


def sign_flips(
    n_subjects: int, n_permutations: int | str = 1024, tail: int = 0, seed: int | None = 0
) -> tuple[np.ndarray, bool, int]:
    """Sign-flip vectors of a one-sample permutation test, as MNE draws them.

    The observed data (no flip) is not among them: it is counted separately,
    first in the null distribution.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (>= 1).
    n_permutations : int | "all"
        Requested size of the null distribution, the observed data included.
        When ``2**(n_subjects - (tail == 0)) <= n_permutations`` (or "all")
        every flip is enumerated (for ``tail=0`` only those that flip the
        first subject: the others mirror them).
    tail : {0, 1, -1}
        Test direction (only ``tail == 0`` changes the set).
    seed : int | None
        Seed of :func:`numpy.random.default_rng` for random flips; the same
        flips as MNE's ``rng=seed``.

    Returns
    -------
    signs : ndarray of float64, shape (n_flips, n_subjects)
        +1 / -1 per subject.
    exhaustive : bool
        True if all flips were enumerated.
    n_permutations : int
        ``n_flips + 1``, the size of the null distribution.
    """
    tail = _check_tail(tail)
    n_permutations = _check_n_permutations(n_permutations)
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    n_codes = 2 ** (n_subjects - (tail == 0)) - 1  # flips other than none / all (tail 0)
    if n_permutations == "all":
        n_permutations = n_codes + 1
    if n_codes < n_permutations:
        # exhaustive: codes 1..n_codes, subject 0 is the most significant bit
        codes = np.arange(1, n_codes + 1, dtype=np.int64)
        orders = (codes[:, None] >> np.arange(n_subjects - 1, -1, -1)) & 1
        exhaustive = True
    else:
        rng = np.random.default_rng(_check_seed(seed))
        exhaustive = False
        if n_subjects <= 20:
            codes = rng.choice(n_codes, n_permutations - 1, replace=False) + 1
            orders = (codes[:, None] >> np.arange(n_subjects - 1, -1, -1)) & 1
        else:
            # draw until unique; for tail 0 the last subject is drawn unflipped and
            # the whole vector is mirrored with probability 1/2 (MNE's scheme)
            use = n_subjects - (tail == 0)
            orders = np.zeros((n_permutations - 1, n_subjects), np.int64)
            seen = set()
            i = 0
            while i < n_permutations - 1:
                draw = (rng.uniform(size=use) < 0.5).astype(np.int64)
                key = draw.tobytes()
                if key in seen:
                    continue
                orders[i, :use] = draw
                if tail == 0 and rng.uniform() < 0.5:
                    orders[i] = 1 - orders[i]
                seen.add(key)
                i += 1
    signs = 2.0 * orders - 1.0
    return signs, exhaustive, int(len(signs) + 1)


# --------------------------------------------------------------------------- cluster engine


class _Clusters:
    """Supra-threshold nodes and same-sign edges of ``n_maps`` statistic maps.

    Time points are fed in order (:meth:`add_time`). A node is a
    supra-threshold (map, time, source) point. For a two-sided test the
    positive and negative points of map ``b`` form two one-sided layers,
    ``b`` and ``n_maps + b``, so that same-sign neighbours are plain
    neighbours within a layer. The node ids of the last ``max_step + 1`` time
    points sit in a ring buffer of shape ``(max_step + 1, n_layers,
    n_sources + 1)`` (0: no node, else id + 1; the extra source is the
    never-active sentinel of the padded neighbour table): neighbours are
    found by index arithmetic -- the adjacency's sources within a time slice,
    one slice back per time step -- without a Python loop over sources.
    """

    def __init__(self, graph: _SourceGraph, n_maps, two_sided, max_step, keep_flat):
        self.graph = graph
        self.n_maps = n_maps
        self.n_layers = n_maps * (2 if two_sided else 1)
        self.n_src = graph.n_sources
        self.max_step = max_step
        self.slots = max_step + 1
        self.ids = np.zeros(self.slots * self.n_layers * (self.n_src + 1), np.int32)
        self._written = [None] * self.slots  # positions filled in each slot
        if graph.padded is not None:
            # per source: its padded spatial neighbours, then itself max_step times
            # (shifted to earlier time slices when looked up)
            self._table = np.concatenate(
                [graph.padded, np.repeat(np.arange(self.n_src)[:, None], max_step, axis=1)],
                axis=1,
            )
        self.keep_flat = keep_flat
        self.n_nodes = 0
        self._next_time = 0
        self._t, self._map, self._flat, self._u, self._v = [], [], [], [], []

    def add_time(self, t, layer, src, values):
        """Add the nodes of time index ``t`` (the next one).

        ``layer`` and ``src`` give each node's layer and source, ``values``
        its statistic; nodes of one layer must come in increasing source
        order (the order of summation within a cluster).
        """
        assert t == self._next_time
        self._next_time += 1
        ids = self.ids
        width = self.n_src + 1
        slice_size = self.n_layers * width
        slot = t % self.slots
        if self._written[slot] is not None:  # clear what this slot held max_step + 1 ago
            ids[self._written[slot]] = 0
            self._written[slot] = None
        n_new = src.size
        if n_new == 0:
            return
        base = slot * slice_size + layer.astype(np.int64) * width  # start of the node's layer
        ext = base + src
        tag = np.arange(self.n_nodes + 1, self.n_nodes + 1 + n_new, dtype=np.int32)  # id + 1
        ids[ext] = tag
        self._written[slot] = ext
        # neighbours: sources s' > s of the same layer at the same time, and the
        # same source and layer 1..max_step samples earlier
        g = self.graph
        offsets = [((t - step) % self.slots - slot) * slice_size for step in range(1, t + 1)]
        offsets = offsets[: self.max_step]
        if g.padded is not None:
            # one row per node: its spatial neighbours, then itself at earlier times;
            # one gather and one nonzero for all, and edges come out sorted by node
            n_sp = g.padded.shape[1]
            nb = self._table.take(src, axis=0)
            nb += base[:, None]
            k = len(offsets)
            if k:
                nb[:, n_sp : n_sp + k] += np.array(offsets, np.int64)
            if k < self.max_step:  # no earlier time yet: look at the sentinel
                nb[:, n_sp + k :] = (base + self.n_src)[:, None]
            nb_tag = ids.take(nb).reshape(-1)
            hit = np.flatnonzero(nb_tag != 0)  # bool input: the fast nonzero
            if hit.size:
                self._u.append(tag[hit // nb.shape[1]])
                self._v.append(nb_tag[hit])
        else:
            cnt = g.degree[src]
            ends = np.cumsum(cnt)
            n_cand = int(ends[-1])
            if n_cand:
                entry = np.repeat(g.indptr[src] - (ends - cnt), cnt)
                entry += np.arange(n_cand)
                nb_tag = ids.take(np.repeat(base, cnt) + g.indices[entry])
                hit = np.flatnonzero(nb_tag != 0)
                if hit.size:
                    self._u.append(tag[np.searchsorted(ends, hit, side="right")])
                    self._v.append(nb_tag[hit])
            for off in offsets:
                nb_tag = ids[ext + off]
                hit = np.flatnonzero(nb_tag != 0)
                if hit.size:
                    self._u.append(tag[hit])
                    self._v.append(nb_tag[hit])
        self._t.append(values)
        self._map.append(layer)
        if self.keep_flat:
            self._flat.append(t * self.n_src + src)
        self.n_nodes += n_new

    def finish(self):
        """Return ``(values, map, flat | None, u, v)`` of all nodes and edges (0-based ids)."""

        def cat(parts, dtype):
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        u = cat(self._u, np.int32)
        v = cat(self._v, np.int32)
        u -= 1
        v -= 1
        return (
            cat(self._t, np.float64),
            cat(self._map, np.int64) % self.n_maps,  # layer -> map
            cat(self._flat, np.int64) if self.keep_flat else None,
            u,
            v,
        )


def _components(n_nodes: int, u: np.ndarray, v: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of ``n_nodes`` nodes joined by edges ``(u, v)``."""
    if n_nodes == 0:
        return 0, np.zeros(0, np.int32)
    if u.size == 0:
        return n_nodes, np.arange(n_nodes, dtype=np.int32)
    # float64 data: what connected_components validates to (no conversion copy)
    if np.all(u[1:] >= u[:-1]):  # edges sorted by first node: CSR as it is, no sort
        indptr = np.zeros(n_nodes + 1, np.int64)
        np.cumsum(np.bincount(u, minlength=n_nodes), out=indptr[1:])
        graph = sparse.csr_array((np.ones(u.size), v, indptr), shape=(n_nodes, n_nodes))
    else:
        graph = sparse.coo_array((np.ones(u.size), (u, v)), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)


def _split_layers(loc, values, n_src, n_maps, one_sided):
    """Map index, source and layer of flat ``(n_maps, n_src)`` positions ``loc``."""
    row, src = np.divmod(loc, n_src)
    layer = row if one_sided else row + n_maps * (values < 0)
    return layer, src


def _collect_maps(graph, maps, thr, one_sided, max_step, keep_flat):
    """Nodes and edges of explicit statistic maps ``maps`` (n_maps, n_times, n_sources).

    Supra-threshold means ``t > thr`` (``one_sided``) or ``|t| > thr``.
    """
    n_maps, n_times, S = maps.shape
    coll = _Clusters(graph, n_maps, not one_sided, max_step, keep_flat)
    for t in range(n_times):
        tb = np.ascontiguousarray(maps[:, t]).reshape(-1)
        loc = np.flatnonzero(tb > thr if one_sided else np.abs(tb) > thr)
        values = tb[loc]
        layer, src = _split_layers(loc, values, S, n_maps, one_sided)
        coll.add_time(t, layer, src, values)
    return coll.finish()


def _flip_variance_floor(Xt, sumsq, signs, sigma, method):
    """Per-flip "hat" term added to the variance (``sigma * max(var)`` or ``sigma``)."""
    n = Xt.shape[1]
    if method == "absolute":
        return np.full(len(signs), sigma)
    vmax = np.full(len(signs), -np.inf)
    for t in range(Xt.shape[0]):
        prod = signs @ Xt[t]
        np.multiply(prod, prod, out=prod)
        prod *= -1.0 / n
        prod += sumsq[t]
        np.maximum(vmax, prod.max(axis=1), out=vmax)
    return sigma * np.maximum(vmax, 0.0) / (n - 1)


def _flip_t(sums, sumsq, n, floor):
    """t-values from subject sums of flipped data (MNE's sign-flip t formula).

    ``floor`` (per value) is the hat term added to the variance, or None.
    Zero variance gives t = 0 (as MNE's permutation loop).
    """
    mean = sums / n
    denom_sq = mean * mean
    denom_sq *= -n
    denom_sq += sumsq
    np.maximum(denom_sq, 0.0, out=denom_sq)
    if floor is None:
        scale = np.sqrt(n * (n - 1))
    else:
        denom_sq /= n - 1
        denom_sq += floor
        denom_sq /= n
        scale = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / np.sqrt(denom_sq)
    if scale != 1.0:
        t *= scale
    if not denom_sq.all():
        t[denom_sq == 0] = 0.0
    return t


def _collect_flips(graph, Xt, sumsq, signs, thr, one_sided, floor, max_step):
    """Nodes and edges of the t-maps of sign-flipped data, ``signs`` (B, n).

    ``Xt`` is the data viewed as ``(n_times, n_subjects, n_sources)`` and ``sumsq``
    the subject sums of squares ``(n_times, n_sources)`` (invariant under
    flips). At each time point the subject sums of all B flipped maps are one
    product ``signs @ Xt[t]``; a point is a candidate when ``sum**2 > c *
    (sumsq + (n - 1) * floor)`` (``|t| > thr`` rewritten without square roots,
    with a 1e-10 margin for rounding); the candidates' t-values are then
    computed exactly and compared with ``thr`` themselves.
    """
    n_times, n, S = Xt.shape
    B = len(signs)
    c = thr * thr * n / (n - 1 + thr * thr) * (1.0 - 1e-10)
    coll = _Clusters(graph, B, not one_sided, max_step, keep_flat=False)
    prod = np.empty((B, S))
    sq = np.empty((B, S))
    cand = np.empty((B, S), bool)
    for t in range(n_times):
        np.matmul(signs, Xt[t], out=prod)
        np.multiply(prod, prod, out=sq)
        q = sumsq[t]
        rhs = c * q if floor is None else c * (q[None, :] + (n - 1) * floor[:, None])
        np.greater(sq, rhs, out=cand)
        loc = np.flatnonzero(cand)
        row, src = np.divmod(loc, S)
        values = _flip_t(prod.reshape(-1)[loc], q[src], n, None if floor is None else floor[row])
        keep = np.flatnonzero(values > thr if one_sided else np.abs(values) > thr)
        if keep.size < loc.size:
            row, src, values = row[keep], src[keep], values[keep]
        layer = row if one_sided else row + B * (values < 0)
        coll.add_time(t, layer, src, values)
    return coll.finish()


def _row_extreme(values, rows, n_rows):
    """Per row, the value of largest magnitude with its sign; 0 for empty rows.

    Ties between a positive and a negative value go to the positive one
    (MNE lists positive clusters first and takes the first maximum).
    """
    top = np.zeros(n_rows)
    bottom = np.zeros(n_rows)
    if values.size:
        np.maximum.at(top, rows, values)
        np.minimum.at(bottom, rows, values)
    return np.where(top >= -bottom, top, bottom)


def _cluster_weights(t, t_power):
    if t_power == 1:
        return t
    return np.sign(t) * np.abs(t) ** t_power


def _batch_rows(n_rows, n_points, frac, bytes_per_node, max_batch_bytes):
    """Flips per batch so that the expected supra-threshold nodes fit the budget."""
    per_row = max(1.0, n_points * min(1.0, frac) * bytes_per_node)
    return int(max(1, min(n_rows, 1024, max_batch_bytes // per_row)))


def _special_rows(signs):
    """Rows whose signs are all equal: +1 (identity) or -1 (everyone flipped), else 0."""
    allpos = np.all(signs > 0, axis=1)
    allneg = np.all(signs < 0, axis=1)
    return allpos.astype(int) - allneg.astype(int)


def _permutation_maxima(
    X3,
    t_obs,
    signs_eff,
    graph,
    thr,
    one_sided,
    statistic,
    sigma,
    sigma_method,
    max_step,
    max_batch_bytes,
    frac,
    bytes_per_node,
):
    """Null-distribution maxima for every flip in ``signs_eff`` (one value each).

    ``statistic(t, map, u, v, n_maps)`` turns one batch's nodes and edges
    into per-map maxima. Flips whose signs are all equal give the observed
    t-map ``t_obs`` (or its negative) exactly; ``signs_eff`` may be mirrored
    (tail -1), ``t_obs`` is not.
    """
    n, T, S = X3.shape
    out = np.zeros(len(signs_eff))
    special = _special_rows(signs_eff)
    for value in (1, -1):
        rows = np.flatnonzero(special == value)
        if rows.size:
            t_map = (value * t_obs)[None]  # t of (value * X)
            t, row, _, u, v = _collect_maps(graph, t_map, thr, one_sided, max_step, False)
            out[rows] = statistic(t, row, u, v, 1)[0]
    rest = np.flatnonzero(special == 0)
    if rest.size == 0:
        return out
    # (time, subject, source) view, no copy: Xt[t] is a BLAS-ready strided matrix
    Xt = X3.transpose(1, 0, 2)
    sumsq = np.einsum("nts,nts->ts", X3, X3)
    n_workers = min(thread_budget(), max(1, rest.size // 32))
    B = _batch_rows(
        -(-rest.size // n_workers), T * S, frac, bytes_per_node, max_batch_bytes // n_workers
    )
    batches = [rest[b0 : b0 + B] for b0 in range(0, rest.size, B)]

    def run(rows):
        signs = np.ascontiguousarray(signs_eff[rows])
        floor = None
        if sigma > 0:
            floor = _flip_variance_floor(Xt, sumsq, signs, sigma, sigma_method)
        t, row, _, u, v = _collect_flips(graph, Xt, sumsq, signs, thr, one_sided, floor, max_step)
        out[rows] = statistic(t, row, u, v, len(rows))

    # batches run in parallel threads, each with single-threaded BLAS (small products;
    # numpy releases the GIL in its loops); memory: n_workers batches at a time
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        if n_workers == 1:
            for rows in batches:
                run(rows)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_workers) as pool:
                list(pool.map(run, batches))
    return out


def _p_values(stats, h0, two_sided):
    """Fraction of ``h0`` at least as extreme as each statistic (MNE's rule)."""
    if two_sided:
        ref, x = np.sort(np.abs(h0)), np.abs(stats)
    else:
        ref, x = np.sort(h0), np.asarray(stats)
    count = ref.size - np.searchsorted(ref, x, side="left")
    return count / ref.size


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


def _null_fraction(thr, n, one_sided):
    """Expected fraction of supra-threshold points of a null t-map (df n - 1)."""
    from scipy.stats import t as t_dist

    return float(t_dist.sf(abs(thr), n - 1) * (1 if one_sided else 2))


# --------------------------------------------------------------------------- results


def _time_source_coords(n_times, n_sources, times, src):
    coords = {"source": ("source", np.arange(n_sources))}
    if times is None:
        coords["time"] = ("time", np.arange(n_times), {"long_name": "time index"})
    else:
        times = np.asarray(times, float)
        if times.shape != (n_times,):
            raise ValueError(f"times must have shape ({n_times},), got {times.shape}")
        coords["time"] = ("time", times, {"units": "s", "long_name": "time"})
    if src is not None:
        if src.n_sources != n_sources:
            raise ValueError(f"src has {src.n_sources} sources, the statistics {n_sources}")
        for i, ax in enumerate("xyz"):
            coords[ax] = ("source", src.pos[:, i], {"units": "m", "long_name": f"source {ax}"})
    return coords


@dataclass(frozen=True)
class ClusterTestResult:
    """Result of :func:`cluster_permutation_test`.

    Parameters
    ----------
    t_obs : ndarray, shape (n_times, n_sources)
        Observed t-values (dimensionless).
    cluster_labels : ndarray of int32, shape (n_times, n_sources)
        0 outside clusters, ``k`` (1-based) inside cluster ``k``, whose
        statistic and p-value are ``cluster_stats[k - 1]``,
        ``cluster_p_values[k - 1]``. Clusters are ordered as MNE orders them:
        positive before negative, then by their first (time, source) point.
    cluster_stats : ndarray, shape (n_clusters,)
        Cluster mass: sum of ``sign(t) * |t|**t_power`` over the cluster
        (the sum of t for ``t_power=1``).
    cluster_p_values : ndarray, shape (n_clusters,)
        Fraction of ``h0`` at least as extreme as the cluster's statistic.
    h0 : ndarray, shape (n_permutations,)
        Null distribution of the maximum cluster statistic: the observed
        maximum first (|max| for tail 0), then one value per sign flip (the
        cluster statistic of largest magnitude, 0 if no cluster). Empty when
        the observed data have no cluster (no permutations are run).
    n_permutations : int
        ``len(h0)``: sign flips used + 1 (0 if no cluster).
    exhaustive : bool
        True if every sign flip was enumerated (exact test).
    tail : int
        0 two-tailed, 1 upper, -1 lower.
    threshold : float
        Cluster-forming t threshold.
    seed : int
        Seed of the random flips (unused when ``exhaustive``).
    max_step : int
        Time neighbourhood (samples) of a source.
    t_power : float
        Power of |t| in the cluster statistic.
    sigma : float
        "Hat" variance regularisation of the t-values.
    sigma_method : str
        "relative" or "absolute".
    """

    t_obs: np.ndarray
    cluster_labels: np.ndarray
    cluster_stats: np.ndarray
    cluster_p_values: np.ndarray
    h0: np.ndarray
    n_permutations: int
    exhaustive: bool
    tail: int
    threshold: float
    seed: int
    max_step: int = 1
    t_power: float = 1.0
    sigma: float = 0.0
    sigma_method: str = "relative"

    @property
    def n_clusters(self) -> int:
        """Number of clusters in the observed data."""
        return int(self.cluster_stats.size)

    def cluster_mask(self, k: int) -> np.ndarray:
        """Boolean ``(n_times, n_sources)`` mask of cluster ``k`` (1-based).

        Parameters
        ----------
        k : int
            Cluster number, ``1 .. n_clusters``.

        Returns
        -------
        mask : ndarray of bool, shape (n_times, n_sources)
        """
        if not 1 <= k <= self.n_clusters:
            raise ValueError(f"cluster number must be in 1..{self.n_clusters}, got {k}")
        return self.cluster_labels == k

    def significant_mask(self, alpha: float = 0.05) -> np.ndarray:
        """Points that belong to a cluster with ``p < alpha``.

        Parameters
        ----------
        alpha : float
            Family-wise error rate.

        Returns
        -------
        mask : ndarray of bool, shape (n_times, n_sources)
        """
        good = np.flatnonzero(self.cluster_p_values < alpha) + 1
        return np.isin(self.cluster_labels, good)

    def to_xarray(self, times=None, src=None):
        """Convert to an :class:`xarray.Dataset` (netCDF-ready).

        Parameters
        ----------
        times : array-like, shape (n_times,) | None
            Time of each sample in seconds (default: sample index).
        src : SourceSpace | None
            Adds source coordinates ``x``, ``y``, ``z`` (m).

        Returns
        -------
        ds : xarray.Dataset
            ``t_obs`` and ``cluster_label`` with dims ``(time, source)``;
            ``cluster_stat`` and ``cluster_p_value`` with dim ``cluster``
            (numbered from 1, as in ``cluster_label``); ``h0`` with dim
            ``permutation``; the test's parameters as attributes.
        """
        import xarray as xr

        n_times, n_sources = self.t_obs.shape
        coords = _time_source_coords(n_times, n_sources, times, src)
        coords["cluster"] = ("cluster", np.arange(1, self.n_clusters + 1))
        data_vars = {
            "t_obs": (
                ("time", "source"),
                self.t_obs,
                {"units": "1", "long_name": "one-sample t across subjects"},
            ),
            "cluster_label": (
                ("time", "source"),
                self.cluster_labels,
                {"units": "1", "long_name": "cluster number (0 = outside clusters)"},
            ),
            "cluster_stat": (
                "cluster",
                self.cluster_stats,
                {"units": "1", "long_name": f"cluster mass (sum of sign(t)|t|^{self.t_power:g})"},
            ),
            "cluster_p_value": (
                "cluster",
                self.cluster_p_values,
                {"units": "1", "long_name": "cluster p-value (family-wise, permutation)"},
            ),
            "h0": (
                "permutation",
                self.h0,
                {
                    "units": "1",
                    "long_name": "maximum cluster statistic per permutation (observed first)",
                },
            ),
        }
        attrs = {
            "test": "spatio-temporal cluster permutation test (sign flips)",
            "tail": self.tail,
            "threshold": self.threshold,
            "n_permutations": self.n_permutations,
            "exhaustive": int(self.exhaustive),
            "seed": self.seed,
            "max_step": self.max_step,
            "t_power": self.t_power,
            "sigma": self.sigma,
            "sigma_method": self.sigma_method,
        }
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


@dataclass(frozen=True)
class TFCETestResult:
    """Result of :func:`tfce_permutation_test`.

    Parameters
    ----------
    t_obs : ndarray, shape (n_times, n_sources)
        Observed t-values (dimensionless).
    tfce : ndarray, shape (n_times, n_sources)
        Enhanced statistic with the sign of ``t_obs`` (MNE's returned
        ``t_obs`` for a TFCE threshold), dimensionless.
    p_values : ndarray, shape (n_times, n_sources)
        Per-point family-wise p-values: fraction of ``h0`` >= ``|tfce|``.
    h0 : ndarray, shape (n_permutations,)
        Maximum |TFCE| per permutation, the observed one first.
    n_permutations : int
        ``len(h0)``.
    exhaustive : bool
        True if every sign flip was enumerated.
    tail : int
        0, 1 or -1.
    start, step : float
        TFCE threshold ladder (``numpy.arange(start, max|t|, step)``).
    e_power, h_power : float
        Extent and height exponents E and H.
    seed : int
        Seed of the random flips.
    max_step : int
        Time neighbourhood (samples) of a source.
    sigma : float
        "Hat" variance regularisation.
    sigma_method : str
        "relative" or "absolute".
    """

    t_obs: np.ndarray
    tfce: np.ndarray
    p_values: np.ndarray
    h0: np.ndarray
    n_permutations: int
    exhaustive: bool
    tail: int
    start: float
    step: float
    e_power: float
    h_power: float
    seed: int
    max_step: int = 1
    sigma: float = 0.0
    sigma_method: str = "relative"

    def significant_mask(self, alpha: float = 0.05) -> np.ndarray:
        """Points with ``p < alpha``.

        Parameters
        ----------
        alpha : float
            Family-wise error rate.

        Returns
        -------
        mask : ndarray of bool, shape (n_times, n_sources)
        """
        return self.p_values < alpha

    def to_xarray(self, times=None, src=None):
        """Convert to an :class:`xarray.Dataset` (netCDF-ready).

        Parameters
        ----------
        times : array-like, shape (n_times,) | None
            Time of each sample in seconds (default: sample index).
        src : SourceSpace | None
            Adds source coordinates ``x``, ``y``, ``z`` (m).

        Returns
        -------
        ds : xarray.Dataset
            ``t_obs``, ``tfce`` and ``p_value`` with dims ``(time, source)``,
            ``h0`` with dim ``permutation``; parameters as attributes.
        """
        import xarray as xr

        n_times, n_sources = self.t_obs.shape
        coords = _time_source_coords(n_times, n_sources, times, src)
        ts = ("time", "source")
        data_vars = {
            "t_obs": (ts, self.t_obs, {"units": "1", "long_name": "one-sample t across subjects"}),
            "tfce": (ts, self.tfce, {"units": "1", "long_name": "TFCE score, sign of t"}),
            "p_value": (
                ts,
                self.p_values,
                {"units": "1", "long_name": "TFCE p-value (family-wise, permutation)"},
            ),
            "h0": (
                "permutation",
                self.h0,
                {"units": "1", "long_name": "maximum TFCE score per permutation (observed first)"},
            ),
        }
        attrs = {
            "test": "threshold-free cluster enhancement permutation test (sign flips)",
            "tail": self.tail,
            "start": self.start,
            "step": self.step,
            "e_power": self.e_power,
            "h_power": self.h_power,
            "n_permutations": self.n_permutations,
            "exhaustive": int(self.exhaustive),
            "seed": self.seed,
            "max_step": self.max_step,
            "sigma": self.sigma,
            "sigma_method": self.sigma_method,
        }
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


@dataclass(frozen=True)
class TmaxTestResult:
    """Result of :func:`tmax_permutation_test`.

    Parameters
    ----------
    t_obs : ndarray, shape X.shape[1:]
        Observed t-values (dimensionless).
    p_values : ndarray, shape X.shape[1:]
        Family-wise p-values from the maximum |t| over all points.
    h0 : ndarray, shape (n_permutations,)
        Maximum |t| per permutation, the observed one first.
    n_permutations : int
        ``len(h0)``.
    exhaustive : bool
        True if every sign flip was enumerated.
    tail : int
        0, 1 or -1.
    seed : int
        Seed of the random flips.
    """

    t_obs: np.ndarray
    p_values: np.ndarray
    h0: np.ndarray
    n_permutations: int
    exhaustive: bool
    tail: int
    seed: int

    def to_xarray(self, times=None, src=None):
        """Convert to an :class:`xarray.Dataset` (maps of shape (n_times, n_sources)).

        Parameters
        ----------
        times : array-like, shape (n_times,) | None
            Time of each sample in seconds (default: sample index).
        src : SourceSpace | None
            Adds source coordinates ``x``, ``y``, ``z`` (m).

        Returns
        -------
        ds : xarray.Dataset
            ``t_obs`` and ``p_value`` with dims ``(time, source)``, ``h0``
            with dim ``permutation``.
        """
        import xarray as xr

        if self.t_obs.ndim != 2:
            raise ValueError(
                f"to_xarray needs (n_times, n_sources) maps, got shape {self.t_obs.shape}"
            )
        n_times, n_sources = self.t_obs.shape
        coords = _time_source_coords(n_times, n_sources, times, src)
        ts = ("time", "source")
        data_vars = {
            "t_obs": (ts, self.t_obs, {"units": "1", "long_name": "one-sample t across subjects"}),
            "p_value": (
                ts,
                self.p_values,
                {"units": "1", "long_name": "max-|t| corrected p-value (family-wise)"},
            ),
            "h0": (
                "permutation",
                self.h0,
                {"units": "1", "long_name": "maximum |t| per permutation (observed first)"},
            ),
        }
        attrs = {
            "test": "max-|t| permutation test (sign flips)",
            "tail": self.tail,
            "n_permutations": self.n_permutations,
            "exhaustive": int(self.exhaustive),
            "seed": self.seed,
        }
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- tests


def cluster_permutation_test(
    X,
    adjacency,
    threshold: float | None = None,
    *,
    tail: int = 0,
    n_permutations: int | str = 1024,
    seed: int | None = 0,
    max_step: int = 1,
    t_power: float = 1.0,
    sigma: float = 0.0,
    sigma_method: str = "relative",
    max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
) -> ClusterTestResult:
    """Spatio-temporal cluster-based sign-flip permutation test (one sample / paired).

    Same numbers as ``mne.stats.spatio_temporal_cluster_1samp_test(X,
    threshold, n_permutations, tail, adjacency=adjacency, max_step=,
    t_power=, rng=seed)`` (see the module notes for the two deliberate
    differences at exact ties).

    Parameters
    ----------
    X : array-like, shape (n_subjects, n_times, n_sources)
        One source map per subject (for a paired design the per-subject
        difference, :func:`paired_difference`), any unit; >= 3 subjects, all
        values finite.
    adjacency : scipy.sparse matrix, shape (n_sources, n_sources)
        Spatial neighbours (nonzero entries; symmetrised, diagonal ignored),
        e.g. :func:`source_adjacency`. Time neighbours are added here.
    threshold : float | None
        Cluster-forming t value: points with ``t > threshold`` (tail 1),
        ``t < threshold`` (tail -1, threshold <= 0) or ``|t| > threshold``
        (tail 0) form clusters. None: :func:`t_threshold` ``(n_subjects,
        0.05, tail)``.
    tail : {0, 1, -1}
        Two-tailed (positive and negative clusters apart), upper or lower.
    n_permutations : int | "all"
        Size of the null distribution, observed data included; all flips
        are enumerated when ``2**(n_subjects - (tail == 0)) <= n_permutations``
        (see :func:`sign_flips`).
    seed : int | None
        Seed of the random flips (``numpy.random.default_rng``; MNE's
        ``rng=seed`` draws the same flips). None draws a seed, recorded in the
        result.
    max_step : int
        A source is adjacent to itself up to ``max_step`` samples away.
    t_power : float
        Cluster statistic: sum of ``sign(t) * |t|**t_power`` (1: sum of t,
        the cluster mass; 0: number of points).
    sigma : float
        "Hat" variance regularisation of every t-map, see :func:`ttest_1samp`.
    sigma_method : {"relative", "absolute"}
        See :func:`ttest_1samp`.
    max_batch_bytes : int
        Memory budget (bytes) of one batch of permutations.

    Returns
    -------
    result : ClusterTestResult
        t-map, cluster labels, statistics, p-values and null distribution.
    """
    X = _check_data(X)
    n, T, S = X.shape
    tail = _check_tail(tail)
    sigma, sigma_method = _check_sigma(sigma, sigma_method)
    max_step = _check_max_step(max_step)
    n_permutations = _check_n_permutations(n_permutations)
    seed = _check_seed(seed)
    thr = _check_threshold(threshold, n, tail)
    t_power = float(t_power)
    if not np.isfinite(t_power) or t_power < 0:
        raise ValueError(f"t_power must be a finite number >= 0, got {t_power!r}")
    graph = _SourceGraph(adjacency, S)
    t_obs = _t_values(X.reshape(n, T * S), sigma, sigma_method).reshape(T, S)
    # tail -1 is tail 1 of the mirrored data: t -> -t (a flip s of -X is -s of X)
    mirror = -1.0 if tail == -1 else 1.0
    one_sided = tail != 0
    thr_eff = abs(thr)
    t_eff = mirror * t_obs

    # observed clusters
    t_nodes, _, flat, u, v = _collect_maps(graph, t_eff[None], thr_eff, one_sided, max_step, True)
    n_comp, labels = _components(t_nodes.size, u, v)
    sums = np.bincount(labels, weights=_cluster_weights(t_nodes, t_power), minlength=n_comp)
    # MNE's order: positive clusters, then negative, each by its first point
    first = np.full(n_comp, np.iinfo(np.int64).max)
    np.minimum.at(first, labels, flat)
    comp_sign = np.sign(t_nodes[np.unique(labels, return_index=True)[1]]) if n_comp else first
    order = np.lexsort((first, -comp_sign))
    rank = np.empty(n_comp, np.int32)
    rank[order] = np.arange(1, n_comp + 1, dtype=np.int32)
    cluster_labels = np.zeros(T * S, np.int32)
    cluster_labels[flat] = rank[labels]
    cluster_labels = cluster_labels.reshape(T, S)
    stats_eff = sums[order]

    def result(h0_eff, p, n_perm, exhaustive):
        return ClusterTestResult(
            t_obs=t_obs,
            cluster_labels=cluster_labels,
            cluster_stats=mirror * stats_eff,
            cluster_p_values=p,
            h0=mirror * h0_eff,
            n_permutations=n_perm,
            exhaustive=exhaustive,
            tail=tail,
            threshold=thr,
            seed=seed,
            max_step=max_step,
            t_power=t_power,
            sigma=sigma,
            sigma_method=sigma_method,
        )

    if n_comp == 0:  # as MNE: nothing to test, no permutations
        return result(np.zeros(0), np.zeros(0), 0, False)

    signs, exhaustive, n_perm = sign_flips(n, n_permutations, tail, seed)

    def max_cluster(t, row, u, v, n_rows):
        n_c, lab = _components(t.size, u, v)
        s = np.bincount(lab, weights=_cluster_weights(t, t_power), minlength=n_c)
        comp_row = np.zeros(n_c, np.int32)
        comp_row[lab] = row
        return _row_extreme(s, comp_row, n_rows)

    frac = max(_null_fraction(thr_eff, n, one_sided), t_nodes.size / (T * S))
    h0_perm = _permutation_maxima(
        X,
        t_obs,
        mirror * signs,
        graph,
        thr_eff,
        one_sided,
        max_cluster,
        sigma,
        sigma_method,
        max_step,
        max_batch_bytes,
        2 * frac,
        _BYTES_PER_NODE,
    )
    orig = np.abs(stats_eff).max() if tail == 0 else stats_eff.max()
    h0_eff = np.concatenate([[orig], h0_perm])
    p = _p_values(stats_eff, h0_eff, tail == 0)
    return result(h0_eff, p, n_perm, exhaustive)


def _tfce_ladder(start, step, stop):
    """Heights ``numpy.arange(start, stop, step)`` of the TFCE steps and their widths.

    The width ``dh`` of the first step is ``|start|`` (MNE's rule), then
    ``|step|`` (as differences of consecutive heights).
    """
    heights = np.arange(start, stop, step, dtype=float)
    dh = np.abs(np.diff(heights, prepend=0.0))
    dh[0:1] = np.abs(heights[0:1])
    return heights, dh


def _tfce_scores(t_abs, u, v, heights, dh, e_power, h_power):
    """TFCE score of every node: sum over heights of ``|h|**H * dh * size**E``.

    ``heights`` are magnitudes in increasing order; ``size`` is the number of
    nodes of the node's cluster among the nodes with ``|t| > h``. The node and
    edge sets shrink as ``h`` rises (an edge lives while both of its ends
    do). A node left without a live edge stays alone at every higher step,
    so it is retired at once with the sum of its remaining step factors
    (size 1), and only linked nodes are labelled.
    """
    scores = np.zeros(t_abs.size)
    factors = np.array([abs(h) ** h_power * d for h, d in zip(heights, dh, strict=True)])
    prefix = np.concatenate([[0.0], np.cumsum(factors)])
    n_above = np.searchsorted(heights, t_abs, side="left")  # steps with h < |t|
    idx = np.arange(t_abs.size)
    ta = t_abs
    w = np.minimum(t_abs[u], t_abs[v]) if u.size else np.zeros(0)
    for i, (h, factor) in enumerate(zip(heights, factors, strict=True)):
        if factor == 0:
            continue  # adds exactly 0 (MNE runs it anyway)
        live = w > h
        linked = np.zeros(idx.size, bool)
        linked[u[live]] = True
        linked[v[live]] = True
        alone = np.flatnonzero((ta > h) & ~linked)
        if alone.size:
            scores[idx[alone]] += prefix[n_above[alone]] - prefix[i]
        if not linked.all():
            new_id = np.cumsum(linked, dtype=np.int64) - 1
            u, v, w = new_id[u[live]].astype(np.int32), new_id[v[live]].astype(np.int32), w[live]
            idx, ta, n_above = idx[linked], ta[linked], n_above[linked]
        if idx.size == 0:
            break
        n_c, lab = _components(idx.size, u, v)
        size = np.bincount(lab, minlength=n_c)
        scores[idx] += (factor * size.astype(float) ** e_power)[lab]
    return scores


def tfce_permutation_test(
    X,
    adjacency,
    *,
    start: float | None = None,
    step: float | None = None,
    e_power: float = 0.5,
    h_power: float = 2.0,
    tail: int = 0,
    n_permutations: int | str = 1024,
    seed: int | None = 0,
    max_step: int = 1,
    sigma: float = 0.0,
    sigma_method: str = "relative",
    max_batch_bytes: int = _DEFAULT_BATCH_BYTES,
) -> TFCETestResult:
    """Threshold-free cluster enhancement with a sign-flip permutation test.

    Same scores as MNE's cluster tests with ``threshold=dict(start=start,
    step=step, e_power=E, h_power=H)`` (MNE 1.13): the t-map is thresholded
    at ``h`` in ``numpy.arange(start, max|t|, step)``; every point in a
    cluster of size ``e`` at height ``h`` gains ``|h|**H * dh * e**E``, with
    ``dh = |start|`` for the first height and ``|step|`` after (Smith &
    Nichols 2009 with E = 0.5, H = 2). Clusters are formed as in
    :func:`cluster_permutation_test` (same sign, adjacent sources, time
    neighbours up to ``max_step``).

    Parameters
    ----------
    X : array-like, shape (n_subjects, n_times, n_sources)
        One source map per subject (or per-subject differences); >= 3
        subjects, finite.
    adjacency : scipy.sparse matrix, shape (n_sources, n_sources)
        Spatial neighbours, e.g. :func:`source_adjacency`.
    start : float | None
        First height (t units); >= 0 for tail 0 and 1, <= 0 for tail -1
        (MNE's convention). None: 0.
    step : float | None
        Height step (t units); > 0 for tail 0 and 1, < 0 for tail -1. None:
        0.2 (-0.2 for tail -1).
    e_power : float
        Extent exponent E.
    h_power : float
        Height exponent H.
    tail : {0, 1, -1}
        Two-tailed, upper or lower.
    n_permutations : int | "all"
        Size of the null distribution, see :func:`cluster_permutation_test`.
    seed : int | None
        Seed of the random flips.
    max_step : int
        Time neighbourhood (samples) of a source.
    sigma : float
        "Hat" variance regularisation, see :func:`ttest_1samp`.
    sigma_method : {"relative", "absolute"}
        See :func:`ttest_1samp`.
    max_batch_bytes : int
        Memory budget (bytes) of one batch of permutations.

    Returns
    -------
    result : TFCETestResult
        t-map, signed TFCE map, per-point p-values and null distribution.
    """
    X = _check_data(X)
    n, T, S = X.shape
    tail = _check_tail(tail)
    sigma, sigma_method = _check_sigma(sigma, sigma_method)
    max_step = _check_max_step(max_step)
    n_permutations = _check_n_permutations(n_permutations)
    seed = _check_seed(seed)
    mirror = -1.0 if tail == -1 else 1.0
    start = 0.0 if start is None else float(start)
    step = 0.2 * mirror if step is None else float(step)
    if not (np.isfinite(start) and np.isfinite(step)):
        raise ValueError(f"start and step must be finite, got {start!r}, {step!r}")
    if mirror * start < 0 or mirror * step <= 0:
        want = "start <= 0 and step < 0" if tail == -1 else "start >= 0 and step > 0"
        raise ValueError(f"tail={tail} needs {want} (as MNE), got start={start}, step={step}")
    e_power, h_power = float(e_power), float(h_power)
    if not (e_power > 0 and h_power > 0 and np.isfinite(e_power) and np.isfinite(h_power)):
        raise ValueError(f"e_power and h_power must be positive, got {e_power}, {h_power}")
    graph = _SourceGraph(adjacency, S)
    t_obs = _t_values(X.reshape(n, T * S), sigma, sigma_method).reshape(T, S)
    one_sided = tail != 0
    start_eff, step_eff = mirror * start, mirror * step
    t_eff = mirror * t_obs

    def lowest(heights, dh):
        """Lowest height whose step adds something (clusters are formed above it)."""
        nz = np.flatnonzero(np.abs(heights) ** h_power * dh != 0)
        return heights[nz[0]] if nz.size else None

    def max_score(t, row, u, v, n_rows):
        out = np.zeros(n_rows)
        if t.size == 0:
            return out
        t_abs = np.abs(t)
        heights, dh = _tfce_ladder(start_eff, step_eff, t_abs.max())
        lo = lowest(heights, dh)
        if lo is None:
            return out
        scores = _tfce_scores(t_abs, u, v, heights, dh, e_power, h_power)
        np.maximum.at(out, row, scores)
        return out

    # observed: heights up to max |t|, as MNE (a warning there if start is above it)
    finite_max = np.abs(t_eff).max() if tail == 0 else t_eff.max()
    heights, dh = _tfce_ladder(start_eff, step_eff, finite_max)
    lo = lowest(heights, dh) if heights.size else None
    first_h = start_eff if lo is None else lo
    t_nodes, _, flat, u, v = _collect_maps(graph, t_eff[None], first_h, one_sided, max_step, True)
    scores = np.zeros(T * S)
    if lo is not None and t_nodes.size:
        scores[flat] = _tfce_scores(np.abs(t_nodes), u, v, heights, dh, e_power, h_power)
    scores = scores.reshape(T, S)
    tfce = scores * np.sign(t_obs)

    signs, exhaustive, n_perm = sign_flips(n, n_permutations, tail, seed)
    # flips: nodes above the lowest height that can add (0 + step when start is 0)
    first_heights, first_dh = _tfce_ladder(start_eff, step_eff, start_eff + 3 * abs(step_eff))
    collect_h = lowest(first_heights, first_dh)
    collect_h = start_eff if collect_h is None else collect_h
    frac = _null_fraction(collect_h, n, one_sided) if collect_h > 0 else 1.0
    h0_perm = _permutation_maxima(
        X,
        t_obs,
        mirror * signs,
        graph,
        collect_h,
        one_sided,
        max_score,
        sigma,
        sigma_method,
        max_step,
        max_batch_bytes,
        1.5 * frac,
        _BYTES_PER_NODE_TFCE,
    )
    h0 = np.concatenate([[scores.max()], h0_perm])
    p = _p_values(scores, h0, False)
    return TFCETestResult(
        t_obs=t_obs,
        tfce=tfce,
        p_values=p.reshape(T, S),
        h0=h0,
        n_permutations=n_perm,
        exhaustive=exhaustive,
        tail=tail,
        start=start,
        step=step,
        e_power=e_power,
        h_power=h_power,
        seed=seed,
        max_step=max_step,
        sigma=sigma,
        sigma_method=sigma_method,
    )


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
