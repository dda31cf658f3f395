"""Spatial adjacency of source spaces for :mod:`exgsrc.stats`, and its index-arithmetic form."""

from __future__ import annotations

import numpy as np
from scipy import sparse


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
