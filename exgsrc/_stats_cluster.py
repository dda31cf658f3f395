"""Spatio-temporal cluster-based permutation test (see :mod:`exgsrc.stats`)."""

from __future__ import annotations

import numpy as np

from ._stats_adjacency import _SourceGraph
from ._stats_engine import (
    _BYTES_PER_NODE,
    _DEFAULT_BATCH_BYTES,
    _cluster_weights,
    _collect_maps,
    _components,
    _null_fraction,
    _p_values,
    _permutation_maxima,
    _row_extreme,
    sign_flips,
)
from ._stats_results import ClusterTestResult
from ._stats_ttest import (
    _check_data,
    _check_max_step,
    _check_n_permutations,
    _check_seed,
    _check_sigma,
    _check_tail,
    _check_threshold,
    _t_values,
)


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
