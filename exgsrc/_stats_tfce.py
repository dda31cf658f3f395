"""Threshold-free cluster enhancement permutation test (see :mod:`exgsrc.stats`)."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ._stats_adjacency import _SourceGraph
from ._stats_engine import (
    _BYTES_PER_NODE_TFCE,
    _DEFAULT_BATCH_BYTES,
    _collect_flips,
    _collect_flips_dense,
    _collect_maps,
    _null_fraction,
    _p_values,
    _permutation_maxima,
    sign_flips,
)
from ._stats_results import TFCETestResult
from ._stats_ttest import (
    _check_data,
    _check_max_step,
    _check_n_permutations,
    _check_seed,
    _check_sigma,
    _check_tail,
    _t_values,
)

#: Expected supra-threshold fraction of a null t-map above which flips are collected
#: on the whole grid (:func:`_collect_flips_dense`) rather than time point by time point.
_DENSE_FRACTION = 0.25


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
    nodes of the node's cluster among the nodes with ``|t| > h``, an edge
    ``(u, v)`` living while both of its ends do.

    Clusters only merge as ``h`` drops, so the steps are taken from the top
    down: a node enters at the highest step below its ``|t|``, an edge at the
    highest step below the smaller ``|t|`` of its ends, and each step joins
    only the clusters that its entering edges touch (one
    :func:`scipy.sparse.csgraph.connected_components` call on those clusters,
    not on all live nodes). Nodes are kept in order of entry, so the live
    nodes are a prefix of the arrays: each step relabels that prefix with one
    gather and keeps ``size**E`` of each live node's cluster; the terms
    ``factor * size**E`` are then summed from the lowest height up, in MNE's
    order, so that scores equal in exact arithmetic are equal to the last bit
    (permutation maxima tie with observed scores: ``>=`` sees the last bit).

    Parameters
    ----------
    t_abs : ndarray, shape (n_nodes,)
        |t| of the nodes (dimensionless).
    u, v : ndarray of int, shape (n_edges,)
        Edges (0-based node ids).
    heights, dh : ndarray, shape (n_steps,)
        Ladder of :func:`_tfce_ladder` (magnitudes, increasing).
    e_power, h_power : float
        Extent and height exponents.

    Returns
    -------
    scores : ndarray, shape (n_nodes,)
    """
    n, n_steps = t_abs.size, heights.size
    scores = np.zeros(n)
    if n == 0 or n_steps == 0:
        return scores
    factors = np.array([abs(h) ** h_power * d for h, d in zip(heights, dh, strict=True)])
    # steps 0 .. top are those with h < |t| (top = -1: never above a step)
    top = np.searchsorted(heights, t_abs, side="left") - 1
    key = (n_steps - 1 - top).astype(np.int16 if n_steps < 2**15 else np.int64)
    order = np.argsort(key, kind="stable")  # by step of entry, the highest first
    n_live = np.cumsum(np.bincount(key, minlength=n_steps + 1)[:n_steps])  # live after step
    rank = np.empty(n, np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    if u.size:
        e_top = np.minimum(top[u], top[v])
        keep = np.flatnonzero(e_top >= 0)
        e_key = key.dtype.type(n_steps - 1) - e_top[keep].astype(key.dtype)
        e_order = keep[np.argsort(e_key, kind="stable")]
        eu, ev = rank[u[e_order]], rank[v[e_order]]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(e_key, minlength=n_steps))])
    else:
        eu = ev = np.zeros(0, np.int32)
        bounds = np.zeros(n_steps + 1, np.int64)
    label = np.arange(n, dtype=np.int32)  # cluster of each node: one of its nodes
    redirect = np.arange(n, dtype=np.int32)
    size = np.ones(n)
    size_e = np.ones(n)  # size ** E
    local = np.empty(n, np.int32)  # scratch: cluster -> position among a step's clusters
    terms = []  # per step with a factor: size**E of each live node's cluster
    for j in range(n_steps):
        i = n_steps - 1 - j  # steps from the top down
        live = int(n_live[j])
        a, b = bounds[j], bounds[j + 1]
        if b > a:
            cu, cv = label[eu[a:b]], label[ev[a:b]]
            differ = np.flatnonzero(cu != cv)
            if differ.size:
                d = differ.size
                both = np.concatenate([cu[differ], cv[differ]])
                local[both] = np.arange(2 * d, dtype=np.int32)  # one position per cluster
                pos = local[both]
                graph = sparse.coo_array((np.ones(d), (pos[:d], pos[d:])), shape=(2 * d, 2 * d))
                _, comp = connected_components(graph, directed=False)
                first = np.flatnonzero(pos == np.arange(2 * d))  # each cluster once
                merging, comp = both[first], comp[first]
                keeper = np.empty(2 * d, np.int32)
                keeper[comp] = merging  # one cluster of each group names the group
                new_size = np.bincount(comp, weights=size[merging])
                target = keeper[comp]
                redirect[merging] = target
                label[:live] = redirect[label[:live]]
                redirect[merging] = merging
                size[target] = new_size[comp]
                size_e[target] = new_size[comp] ** e_power
        if factors[i] != 0:
            terms.append((factors[i], size_e[label[:live]]))
    # summed from the lowest height up, as MNE sums them (equal scores stay equal to
    # the last bit, which the ">=" of the p-values sees)
    acc = np.zeros(n)  # scores in entry order
    for factor, size_e_live in reversed(terms):
        acc[: size_e_live.size] += factor * size_e_live
    scores[order] = acc
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
        _collect_flips_dense if frac > _DENSE_FRACTION else _collect_flips,
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
