"""Cohort statistics (exgsrc.stats) against MNE-Python's mne.stats.

The oracle is MNE 1.13: ``spatio_temporal_cluster_1samp_test`` /
``permutation_cluster_1samp_test`` with the same adjacency, threshold, tail
and flips (exhaustive for <= 10 subjects; for random flips MNE's
``rng=seed`` draws the same ones as our ``seed``), TFCE via
``threshold=dict(start=, step=)``, ``permutation_t_test``,
``ttest_1samp_no_p`` and ``fdr_correction``. Fixtures are small ico source
spaces with spatially smoothed noise and planted effects.
"""

from __future__ import annotations

import importlib
from functools import partial

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from exgsrc.source_space import discrete_source_space, grid_source_space, ico_source_space
from exgsrc.stats import (
    cluster_permutation_test,
    fdr_correction,
    paired_difference,
    sign_flips,
    source_adjacency,
    t_threshold,
    tfce_permutation_test,
    tmax_permutation_test,
    ttest_1samp,
    ttest_paired,
)

mne = importlib.import_module("mne")
mne.set_log_level("error")

RTOL = 1e-10
# the TFCE increments |h|**H * dh of MNE 1.13 (earlier versions summed other terms)
MNE_TFCE_FIXED = tuple(int(x) for x in mne.__version__.split(".")[:2]) >= (1, 13)


def _smooth(data, adjacency, n_steps=2):
    """Average each source with its neighbours ``n_steps`` times (last axis)."""
    a = adjacency.astype(float) + np.eye(adjacency.shape[0])
    a = a / a.sum(axis=1)[:, None]
    for _ in range(n_steps):
        data = data @ a.T
    return data


def _cohort(grade=2, n_subjects=9, n_times=10, seed=0, effect=1.5):
    """Smoothed noise with one positive and one negative planted effect."""
    src = ico_source_space(grade, 0.07)
    adj = source_adjacency(src)
    rng = np.random.default_rng(seed)
    X = _smooth(rng.standard_normal((n_subjects, n_times, src.n_sources)), adj.toarray())
    S = src.n_sources
    X[:, n_times // 4 : n_times // 2, : S // 4] += effect * X.std()
    X[:, n_times // 2 :, S // 2 : S // 2 + S // 5] -= effect * X.std()
    return src, adj, X


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


def _mne_cluster(X, adj, threshold, tail, n_permutations, seed=0, **kw):
    t_obs, clusters, p, h0 = mne.stats.spatio_temporal_cluster_1samp_test(
        X,
        threshold=threshold,
        n_permutations=n_permutations,
        tail=tail,
        adjacency=adj,
        out_type="mask",
        rng=seed,
        **kw,
    )
    return t_obs, clusters, p, h0


def _mne_p_identity_tie(stats, h0, tail, n_subjects):
    """MNE's p-values after setting its identity flip to the observed maximum.

    For a one-tailed exhaustive test MNE's flips include the identity (all
    subjects unflipped, the last code), whose statistic MNE recomputes with a
    different rounding, so whether it ties with the observed maximum is down
    to the last bit; we use the observed map itself there.
    """
    h0 = h0.copy()
    h0[2**n_subjects - 1] = h0[0]
    if tail == 1:
        return np.array([np.mean(h0 >= s) for s in stats])
    return np.array([np.mean(h0 <= s) for s in stats])


# --------------------------------------------------------------------------- t-tests


@pytest.mark.parity
@pytest.mark.parametrize(
    "sigma, method", [(0.0, "relative"), (1e-3, "relative"), (0.05, "absolute")]
)
def test_ttest_hat_matches_mne(cohort, sigma, method):
    _, _, X = cohort
    ours = ttest_1samp(X, sigma=sigma, sigma_method=method)
    ref = mne.stats.ttest_1samp_no_p(X, sigma=sigma, method=method)
    assert_allclose(ours, ref, rtol=1e-12, atol=0)
    assert sigma == 0 or not np.allclose(ours, ttest_1samp(X), rtol=1e-3)  # sigma acts


def test_paired_is_one_sample_of_difference(cohort):
    _, _, X = cohort
    Y = X[::-1] * 0.5
    assert_array_equal(paired_difference(X, Y), X - Y)
    assert_allclose(ttest_paired(X, Y), ttest_1samp(X - Y), rtol=1e-14)


# --------------------------------------------------------------------------- adjacency


@pytest.mark.parity
def test_source_adjacency_matches_mne_tris():
    src = ico_source_space(3, 0.07)
    ours = source_adjacency(src).toarray()
    ref = mne.spatial_tris_adjacency(src.tris).toarray()
    np.fill_diagonal(ref, 0)  # MNE keeps each vertex adjacent to itself
    assert_array_equal(ours != 0, ref != 0)
    assert_array_equal(ours, ours.T)
    assert np.all(np.diag(ours) == 0)
    # 6 neighbours everywhere except the 12 icosahedron vertices (5)
    assert sorted(np.bincount((ours != 0).sum(axis=1)).nonzero()[0]) == [5, 6]


def test_source_adjacency_grid_and_distance():
    grid = grid_source_space(0.01, 0.035)
    adj = source_adjacency(grid)  # grid step from meta: the 6 face neighbours
    d = np.linalg.norm(grid.pos[:, None] - grid.pos[None], axis=-1)
    expected = np.isclose(d, 0.01)
    assert_array_equal(adj.toarray() != 0, expected)
    disc = discrete_source_space(grid.pos)
    with pytest.raises(ValueError, match="distance="):
        source_adjacency(disc)
    adj2 = source_adjacency(disc, distance=0.0142)  # 18-neighbourhood
    assert_array_equal(adj2.toarray() != 0, (d > 0) & (d <= 0.0142))


# --------------------------------------------------------------------------- cluster test


@pytest.mark.parity
@pytest.mark.parametrize("tail", [0, 1, -1])
def test_cluster_test_exhaustive_matches_mne(cohort, tail):
    src, adj, X = cohort
    n = X.shape[0]
    thr = t_threshold(n, 0.05, tail)
    res = cluster_permutation_test(X, adj, thr, tail=tail, n_permutations=1024)
    # MNE given its own adjacency from the same triangles
    mne_adj = mne.spatial_tris_adjacency(src.tris)
    t_obs, clusters, p, h0 = _mne_cluster(X, mne_adj, thr, tail, 1024)
    assert res.exhaustive
    assert res.n_permutations == len(h0) == 2 ** (n - (tail == 0))
    assert_allclose(res.t_obs, t_obs, rtol=1e-12, atol=0)
    assert res.n_clusters == len(clusters) >= 2
    for k, mask in enumerate(clusters, start=1):  # same clusters, same order
        assert_array_equal(res.cluster_mask(k), mask)
    sums = np.array([t_obs[m].sum() for m in clusters])
    assert_allclose(res.cluster_stats, sums, rtol=RTOL, atol=0)
    assert_allclose(res.h0, h0, rtol=RTOL, atol=0)
    if tail == 0:  # no flip equals the observed data: p-values are bit-equal
        assert_array_equal(res.cluster_p_values, p)
    else:
        expected = _mne_p_identity_tie(res.cluster_stats, h0, tail, n)
        assert_array_equal(res.cluster_p_values, expected)
        assert np.max(np.abs(res.cluster_p_values - p)) <= 1.0 / len(h0)
    assert res.cluster_p_values.min() < 0.05  # the planted effects are found


@pytest.mark.parity
@pytest.mark.parametrize("n_subjects", [12, 22])  # MNE draws flips two ways (<= 20, > 20)
def test_cluster_test_random_flips_match_mne(n_subjects):
    src, adj, X = _cohort(grade=1, n_subjects=n_subjects, n_times=8, seed=3, effect=0.5)
    thr = t_threshold(n_subjects, 0.05, 0)
    res = cluster_permutation_test(X, adj, thr, n_permutations=300, seed=7)
    t_obs, clusters, p, h0 = _mne_cluster(X, adj, thr, 0, 300, seed=7)
    assert not res.exhaustive and res.seed == 7
    assert len(res.h0) == len(h0) == 300
    assert_allclose(res.h0, h0, rtol=RTOL, atol=0)
    assert_array_equal(res.cluster_p_values, p)
    other = cluster_permutation_test(X, adj, thr, n_permutations=300, seed=8)
    assert not np.allclose(other.h0, res.h0)  # the seed matters


@pytest.mark.parity
def test_cluster_test_options_match_mne(cohort):
    """max_step, t_power and the hat variance, with our sparse matrix given to MNE."""
    _, adj, X = cohort
    n = X.shape[0]
    thr = t_threshold(n, 0.05, 0)
    res = cluster_permutation_test(X, adj, thr, max_step=2, t_power=2, n_permutations=1024)
    t_obs, clusters, p, h0 = _mne_cluster(X, adj, thr, 0, 1024, max_step=2, t_power=2)
    assert res.n_clusters == len(clusters)
    assert_allclose(res.h0, h0, rtol=RTOL, atol=0)
    assert_array_equal(res.cluster_p_values, p)
    sigma = 1e-3
    res = cluster_permutation_test(X, adj, thr, sigma=sigma, n_permutations=1024)
    stat_fun = partial(mne.stats.ttest_1samp_no_p, sigma=sigma)
    t_obs, clusters, p, h0 = _mne_cluster(
        X, adj, thr, 0, 1024, stat_fun=stat_fun, buffer_size=None
    )
    assert_allclose(res.t_obs, t_obs, rtol=1e-12, atol=0)
    assert res.n_clusters == len(clusters)
    assert_allclose(res.h0, h0, rtol=RTOL, atol=0)
    assert_array_equal(res.cluster_p_values, p)


def test_cluster_test_batching_and_threads_do_not_change_results(cohort):
    _, adj, X = cohort
    thr = t_threshold(X.shape[0], 0.05, 0)
    ref = cluster_permutation_test(X, adj, thr, n_permutations=1024)
    tiny = cluster_permutation_test(X, adj, thr, n_permutations=1024, max_batch_bytes=1)
    assert_allclose(tiny.h0, ref.h0, rtol=1e-12, atol=0)
    assert_array_equal(tiny.cluster_p_values, ref.cluster_p_values)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # thread_budget() == 1: the serial path
        serial = cluster_permutation_test(X, adj, thr, n_permutations=1024)
    assert_allclose(serial.h0, ref.h0, rtol=1e-12, atol=0)


def test_cluster_test_without_clusters(cohort):
    _, adj, X = cohort
    res = cluster_permutation_test(X, adj, 50.0)
    assert res.n_clusters == 0 and res.h0.size == 0 and res.n_permutations == 0
    assert not res.cluster_labels.any()
    assert res.to_xarray().sizes["cluster"] == 0


@pytest.mark.parametrize("tail", [0, 1])
def test_false_positive_rate_on_null_data(tail):
    """Pure noise: any cluster with p < 0.05 in about 5 % of 200 cohorts.

    Sign-flip tests are exact for symmetric noise, so the family-wise rate of
    the largest cluster is 0.05 up to the p-value resolution (1/128, 1/256);
    the bounds are binomial quantiles at 1e-4 on both sides (a biased H0 or
    wrong p-value rule would move the rate out of them).
    """
    from scipy.stats import binom

    src = ico_source_space(1, 0.07)
    adj = source_adjacency(src)
    rng = np.random.default_rng(2024 + tail)
    n_cases, alpha, n = 200, 0.05, 8
    thr = t_threshold(n, 0.05, tail)
    hits = tmax_hits = 0
    for _ in range(n_cases):
        X = _smooth(rng.standard_normal((n, 5, src.n_sources)), adj.toarray(), 1)
        res = cluster_permutation_test(X, adj, thr, tail=tail, n_permutations=1024)
        hits += bool(res.n_clusters) and res.cluster_p_values.min() < alpha
        tmax = tmax_permutation_test(X, tail=tail, n_permutations=1024)
        tmax_hits += tmax.p_values.min() < alpha
    lo, hi = binom.ppf(1e-4, n_cases, alpha), binom.ppf(1 - 1e-4, n_cases, alpha)
    assert lo <= hits <= hi, (hits, lo, hi)
    assert lo <= tmax_hits <= hi, (tmax_hits, lo, hi)


# --------------------------------------------------------------------------- TFCE


@pytest.fixture(scope="module")
def small_cohort():
    return _cohort(grade=1, n_subjects=8, n_times=6, seed=5)


@pytest.mark.parity
@pytest.mark.skipif(not MNE_TFCE_FIXED, reason="MNE < 1.13 scores TFCE differently")
@pytest.mark.parametrize(
    "tail, threshold",
    [
        (0, dict(start=0.0, step=0.2)),
        (1, dict(start=0.5, step=0.25)),
        (0, dict(start=0.3, step=0.3, e_power=0.66, h_power=1.5)),
    ],
)
def test_tfce_matches_mne(small_cohort, tail, threshold):
    _, adj, X = small_cohort
    res = tfce_permutation_test(
        X,
        adj,
        start=threshold["start"],
        step=threshold["step"],
        e_power=threshold.get("e_power", 0.5),
        h_power=threshold.get("h_power", 2.0),
        tail=tail,
        n_permutations=1024,
    )
    tfce, _, p, h0 = _mne_cluster(X, adj, threshold, tail, 1024)
    assert res.exhaustive and len(res.h0) == len(h0)
    assert_allclose(res.tfce, tfce, rtol=RTOL, atol=0)
    assert_allclose(res.h0, h0, rtol=RTOL, atol=0)
    if tail == 0:
        assert_array_equal(res.p_values.ravel(), p)
    else:  # MNE's identity flip may round below the observed maximum
        expected = _mne_p_identity_tie(np.abs(res.tfce.ravel()), h0, 1, len(X))
        assert_array_equal(res.p_values.ravel(), expected)
        assert np.max(np.abs(res.p_values.ravel() - p)) <= 1.0 / len(h0)
    assert res.p_values.min() < 0.05


@pytest.mark.parity
@pytest.mark.skipif(not MNE_TFCE_FIXED, reason="MNE < 1.13 scores TFCE differently")
def test_tfce_options_match_mne(small_cohort):
    """max_step 2 and the hat variance (the flips' per-map variance floor) in TFCE."""
    _, adj, X = small_cohort
    sigma = 1e-3
    res = tfce_permutation_test(
        X, adj, start=0.0, step=0.2, max_step=2, sigma=sigma, n_permutations=1024
    )
    stat_fun = partial(mne.stats.ttest_1samp_no_p, sigma=sigma)
    tfce, _, p, h0 = _mne_cluster(
        X,
        adj,
        dict(start=0.0, step=0.2),
        0,
        1024,
        max_step=2,
        stat_fun=stat_fun,
        buffer_size=None,
    )
    assert res.exhaustive and len(res.h0) == len(h0)
    assert_allclose(res.tfce, tfce, rtol=RTOL, atol=0)
    assert_allclose(res.h0, h0, rtol=RTOL, atol=0)
    assert_array_equal(res.p_values.ravel(), p)
    assert res.p_values.min() < 0.05


@pytest.mark.parity
@pytest.mark.skipif(not MNE_TFCE_FIXED, reason="MNE < 1.13 scores TFCE differently")
def test_tfce_lower_tail_is_upper_tail_of_negated_data(small_cohort):
    """Scores and h0 as MNE's tail=-1; p-values those of tail=1 on -X.

    MNE 1.13 compares its (positive) tail -1 scores with ``h0 <= score``,
    which inverts them; we do not copy that.
    """
    _, adj, X = small_cohort
    res = tfce_permutation_test(X, adj, start=0.0, step=-0.4, tail=-1, n_permutations=1024)
    tfce, _, _, h0 = _mne_cluster(X, adj, dict(start=0.0, step=-0.4), -1, 1024)
    assert_allclose(res.tfce, tfce, rtol=RTOL, atol=0)
    assert_allclose(res.h0[1:], h0[1:], rtol=RTOL, atol=0)
    _, _, p_mirror, h0_mirror = _mne_cluster(-X, adj, dict(start=0.0, step=0.4), 1, 1024)
    assert_allclose(res.h0, h0_mirror, rtol=RTOL, atol=0)
    expected = _mne_p_identity_tie(-res.tfce.ravel(), h0_mirror, 1, len(X))
    assert_array_equal(res.p_values.ravel(), expected)
    assert np.max(np.abs(res.p_values.ravel() - p_mirror)) <= 1.0 / len(h0)
    assert (res.tfce <= 0).all() and res.p_values.min() < 0.05


# --------------------------------------------------------------------------- T-max, FDR


@pytest.mark.parity
@pytest.mark.parametrize("tail", [0, 1, -1])
@pytest.mark.parametrize("n_permutations", [1024, 200])
def test_tmax_matches_mne(cohort, tail, n_permutations):
    _, _, X = cohort
    res = tmax_permutation_test(X, tail=tail, n_permutations=n_permutations, seed=3)
    t_obs, p, h0 = mne.stats.permutation_t_test(
        X.reshape(len(X), -1), n_permutations=n_permutations, tail=tail, rng=3
    )
    assert_allclose(res.t_obs.ravel(), t_obs, rtol=1e-12, atol=0)
    assert res.exhaustive == (n_permutations == 1024)
    assert_allclose(np.sort(res.h0), h0, rtol=RTOL, atol=0)  # MNE returns it sorted
    # MNE's identity flip (one-tailed, exhaustive) is recomputed: a rounding tie
    top = np.abs(t_obs).max()
    h0_tied = np.where(np.isclose(h0, top, rtol=1e-12, atol=0), top, h0)
    x = {0: np.abs(t_obs), 1: t_obs, -1: -t_obs}[tail]
    expected = (h0_tied[None, :] >= x[:, None]).mean(axis=1)
    assert_array_equal(res.p_values.ravel(), expected)
    if tail == 0:
        assert_array_equal(res.p_values.ravel(), p)


@pytest.mark.parity
@pytest.mark.parametrize("method", ["indep", "negcorr"])
def test_fdr_matches_mne(method):
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=300) ** 3, [0.01, 0.01, 0.5, 0.5]]).reshape(8, 38)
    reject, p_corr = fdr_correction(p, alpha=0.05, method=method)
    ref_reject, ref_corr = mne.stats.fdr_correction(p, alpha=0.05, method=method)
    assert_array_equal(reject, ref_reject)
    assert_array_equal(p_corr, ref_corr)
    assert 0 < reject.sum() < reject.size


# --------------------------------------------------------------------------- flips, results


def test_sign_flips_sets():
    signs, exhaustive, n_perm = sign_flips(5, 1000, tail=0)
    assert exhaustive and n_perm == 16 and signs.shape == (15, 5)
    assert (signs[:, 0] == -1).all()  # half of the flips: subject 0 always flipped
    assert len({tuple(s) for s in signs}) == 15
    signs, exhaustive, n_perm = sign_flips(5, 1000, tail=1)
    assert exhaustive and n_perm == 32 and (signs == 1).all(axis=1).sum() == 1
    signs, exhaustive, n_perm = sign_flips(30, 50, tail=0, seed=1)
    assert not exhaustive and n_perm == 50 and len({tuple(s) for s in signs}) == 49
    assert_array_equal(signs, sign_flips(30, 50, tail=0, seed=1)[0])


def test_result_to_xarray_roundtrip(cohort, tmp_path):
    xr = pytest.importorskip("xarray")
    src, adj, X = cohort
    res = cluster_permutation_test(X, adj, n_permutations=64, seed=None)
    assert isinstance(res.seed, int)
    times = np.arange(X.shape[1]) * 0.004 - 0.01
    ds = res.to_xarray(times=times, src=src)
    assert ds["t_obs"].dims == ("time", "source")
    assert ds["cluster_stat"].dims == ("cluster",)
    assert ds["time"].attrs["units"] == "s" and ds["x"].attrs["units"] == "m"
    assert all("long_name" in ds[v].attrs and "units" in ds[v].attrs for v in ds.data_vars)
    path = tmp_path / "clusters.nc"
    ds.to_netcdf(path)
    back = xr.load_dataset(path)
    assert_array_equal(back["cluster_label"].values, res.cluster_labels)
    assert back.attrs["seed"] == res.seed and back.attrs["tail"] == 0
    labels = back["cluster_label"].values
    for k in range(1, res.n_clusters + 1):  # labels and statistics agree
        assert_allclose(res.t_obs[labels == k].sum(), res.cluster_stats[k - 1], rtol=1e-10)
    sig = res.significant_mask(0.05)
    assert sig.any() and not (sig & (labels == 0)).any()
    tf = tfce_permutation_test(X, adj, n_permutations=64).to_xarray(times=times)
    tf.to_netcdf(tmp_path / "tfce.nc")
    assert set(tf.data_vars) == {"t_obs", "tfce", "p_value", "h0"}
    tm = tmax_permutation_test(X, n_permutations=64).to_xarray()
    assert tm["p_value"].dims == ("time", "source")


# --------------------------------------------------------------------------- errors


def test_clear_errors(cohort):
    _, adj, X = cohort
    with pytest.raises(ValueError, match="at least 3"):
        cluster_permutation_test(X[:2], adj)
    with pytest.raises(ValueError, match="at least 3"):
        tmax_permutation_test(X[:2])
    with pytest.raises(ValueError, match=r"\(n_subjects, n_times, n_sources\)"):
        cluster_permutation_test(X[:, 0], adj)
    with pytest.raises(ValueError, match="adjacency has shape"):
        cluster_permutation_test(X[:, :, :-1], adj)
    with pytest.raises(ValueError, match="scipy.sparse"):
        cluster_permutation_test(X, adj.toarray())
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(X, X[:, :-1])
    bad = X.copy()
    bad[4, 2, 17] = np.nan
    with pytest.raises(ValueError, match="subject 4, time index 2, source 17"):
        cluster_permutation_test(bad, adj)
    with pytest.raises(ValueError, match="X_b holds 1 non-finite"):
        paired_difference(X, bad)
    with pytest.raises(ValueError, match=r"first at index \(4, 2, 17\)"):
        tmax_permutation_test(bad)
    with pytest.raises(ValueError, match="does not match tail"):
        cluster_permutation_test(X, adj, 2.0, tail=-1)
    with pytest.raises(ValueError, match="start <= 0 and step < 0"):
        tfce_permutation_test(X, adj, step=0.2, tail=-1)
    with pytest.raises(ValueError, match="tail must be"):
        cluster_permutation_test(X, adj, tail=2)
    with pytest.raises(ValueError, match="n_permutations"):
        cluster_permutation_test(X, adj, n_permutations=1)
    with pytest.raises(ValueError, match="seed"):
        cluster_permutation_test(X, adj, seed=-1)
    with pytest.raises(ValueError, match="sigma_method"):
        ttest_1samp(X, sigma=0.1, sigma_method="other")
