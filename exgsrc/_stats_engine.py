"""The permutation engine of :mod:`exgsrc.stats`: sign flips, supra-threshold graphs, null maxima.

See the "Speed" notes of :mod:`exgsrc.stats`.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ._stats_adjacency import _SourceGraph
from ._stats_ttest import _check_n_permutations, _check_seed, _check_tail
from ._system import thread_budget

_DEFAULT_BATCH_BYTES = 512 * 2**20
# bytes per supra-threshold node in a batch: value, position, id in two time
# slices, a few edges in int32, and connected_components' CSR and labels
_BYTES_PER_NODE = 96
# TFCE keeps more per node (measured at ico 4, 200 times: about 180 B while the
# grid is collected, 290 B while scoring): the dense grid's masks, edge steps,
# labels, and each step's size**E of the live nodes
_BYTES_PER_NODE_TFCE = 320


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


def _collect_flips_dense(graph, Xt, sumsq, signs, thr, one_sided, floor, max_step):
    """:func:`_collect_flips` for low thresholds (most points supra-threshold, TFCE).

    The same nodes (the same t-values, bit for bit: the same product per time
    point and the same element-wise :func:`_flip_t`) and the same edges, found
    on the whole ``(time, flip, source)`` grid at once instead of time point by
    time point: node ids follow the grid order and edges are the adjacency's
    pairs (and time neighbours) whose ends are both supra-threshold and of one
    sign. No ring buffer and no per-node gathers; worth it when the fraction of
    supra-threshold points is large.
    """
    n_times, n, S = Xt.shape
    B = len(signs)
    tmap = np.empty((n_times, B, S))
    floor_b = None if floor is None else floor[:, None]
    for t in range(n_times):
        np.matmul(signs, Xt[t], out=tmap[t])
        tmap[t] = _flip_t(tmap[t], sumsq[t], n, floor_b)
    supra = tmap > thr if one_sided else np.abs(tmap) > thr
    flat = supra.reshape(-1)
    node = np.cumsum(flat, dtype=np.int64)
    node -= 1  # node id of each supra-threshold grid point
    values = tmap.reshape(-1)[flat]
    row = (np.flatnonzero(flat) // S) % B
    positive = None if one_sided else tmap > 0
    us, vs = [], []
    # spatial: the adjacency's pairs (s < s') within each (time, flip) slice
    s_lo = np.repeat(np.arange(S), graph.degree)
    s_hi = graph.indices
    if s_lo.size:
        ok = supra[:, :, s_lo]
        ok &= supra[:, :, s_hi]
        if not one_sided:
            ok &= positive[:, :, s_lo] == positive[:, :, s_hi]
        slab, e = np.divmod(np.flatnonzero(ok), s_lo.size)
        base = slab * S
        us.append(node[base + s_lo[e]])
        vs.append(node[base + s_hi[e]])
    # time: the same source and flip 1..max_step samples earlier
    for k in range(1, min(max_step, n_times - 1) + 1):
        ok = supra[k:] & supra[:-k]
        if not one_sided:
            ok &= positive[k:] == positive[:-k]
        idx = np.flatnonzero(ok.reshape(-1))
        us.append(node[idx + k * B * S])
        vs.append(node[idx])
    u = np.concatenate(us).astype(np.int32) if us else np.zeros(0, np.int32)
    v = np.concatenate(vs).astype(np.int32) if vs else np.zeros(0, np.int32)
    return values, row, None, u, v


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
    collect=_collect_flips,
):
    """Null-distribution maxima for every flip in ``signs_eff`` (one value each).

    ``statistic(t, map, u, v, n_maps)`` turns one batch's nodes and edges
    into per-map maxima; ``collect`` finds them (:func:`_collect_flips` or,
    when most points are supra-threshold, :func:`_collect_flips_dense`). Flips whose signs are all equal give the observed
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
        t, row, _, u, v = collect(graph, Xt, sumsq, signs, thr, one_sided, floor, max_step)
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


def _null_fraction(thr, n, one_sided):
    """Expected fraction of supra-threshold points of a null t-map (df n - 1)."""
    from scipy.stats import t as t_dist

    return float(t_dist.sf(abs(thr), n - 1) * (1 if one_sided else 2))
