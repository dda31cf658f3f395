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

TFCE thresholds low (most points are nodes), so its flips are collected on the
whole (time, flip, source) grid at once, and the scores come from one pass down
the height ladder: clusters only merge as the height drops, so each step joins
just the clusters its entering edges touch (a union-find over the live nodes,
kept as a prefix in order of entry) instead of labelling every live node again
at every height; the terms ``|h|**H * dh * size**E`` are summed from the lowest
height up as MNE sums them, so the scores equal MNE's to the last bit.

Layout
------
This module is the public face; the code sits in private flat modules beside it
(the core's flat style): ``_stats_ttest`` (input checks, t-values, thresholds),
``_stats_adjacency`` (source adjacency and its index form), ``_stats_engine``
(sign flips, supra-threshold graphs, permutation maxima, p-values),
``_stats_cluster``, ``_stats_tfce``, ``_stats_tmax`` (the tests, FDR) and
``_stats_results`` (result types and their xarray form).
"""

from __future__ import annotations

from ._stats_adjacency import source_adjacency
from ._stats_cluster import cluster_permutation_test
from ._stats_engine import sign_flips
from ._stats_results import ClusterTestResult, TFCETestResult, TmaxTestResult
from ._stats_tfce import tfce_permutation_test
from ._stats_tmax import fdr_correction, tmax_permutation_test
from ._stats_ttest import paired_difference, t_threshold, ttest_1samp, ttest_paired

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
