"""Threshold-free cluster enhancement permutation test (see :mod:`exgsrc.stats`)."""

from __future__ import annotations

import numpy as np

from ._stats_adjacency import _SourceGraph
from ._stats_engine import (
    _BYTES_PER_NODE_TFCE,
    _DEFAULT_BATCH_BYTES,
    _collect_maps,
    _components,
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
