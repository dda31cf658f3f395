"""Tests of exgsrc.resolution: blocked PSF/CTF metrics, PSF/CTF extraction.

The oracle is MNE-Python: its sphere forward, its inverse operator, its
resolution matrix and its metric definitions (``resolution_metrics`` needs a
cortical surface source space, so the same positions are wrapped in a
two-hemisphere ``SourceSpaces`` of type ``surf``; MNE returns centimetres).
"""

from __future__ import annotations

import importlib
import tracemalloc

import numpy as np
import pytest

from exgsrc.resolution import (
    ALL_METRICS,
    get_cross_talk,
    get_functions_from_kernel,
    get_point_spread,
    resolution_metrics_from_kernel,
)

R0 = np.array([0.0, 0.0, 0.04])
HEAD_RADIUS = 0.09
RTOL = 1e-6


def _ico(grade):
    import mne

    return mne.surface._get_ico_surface(grade)["rr"]


def _source_positions():
    """Three concentric ico-2 shells (162 x 3 = 486 sources), radial normals."""
    unit = _ico(2)
    rng = np.random.default_rng(3)
    rot, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    unit = unit @ rot.T  # break alignment with the electrode grid
    pos = np.concatenate([R0 + r * unit for r in (0.03, 0.05, 0.065)])
    nn = np.concatenate([unit] * 3)
    return pos, nn


def _electrodes(n=48, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((4 * n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v = v[v[:, 2] > -0.3][:n]
    return R0 + HEAD_RADIUS * v


@pytest.fixture(scope="module")
def mne_model():
    """MNE sphere forward (fixed and free), info, ad hoc cov on a discrete source space."""
    import mne

    mne.set_log_level("ERROR")
    pos, nn = _source_positions()
    el = _electrodes()
    names = [f"E{i:02d}" for i in range(len(el))]
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(
        mne.channels.make_dig_montage(dict(zip(names, el, strict=True)), coord_frame="head")
    )
    raw = mne.io.RawArray(np.zeros((len(names), 10)), info)
    raw.set_eeg_reference(projection=True)
    info = raw.info
    src = mne.setup_volume_source_space(pos=dict(rr=pos, nn=nn))
    bem = mne.make_sphere_model(r0=R0, head_radius=HEAD_RADIUS)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=bem, eeg=True, meg=False)
    fwd_fixed = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True)
    fwd_surf = mne.convert_forward_solution(fwd, surf_ori=True)
    cov = mne.make_ad_hoc_cov(info)
    # the same positions as a "cortical surface" so MNE's metric code accepts them
    half = len(pos) // 2
    hemis = []
    for verts in (np.arange(half), np.arange(half, len(pos))):
        hemis.append(
            dict(
                type="surf",
                rr=pos,
                nn=nn,
                vertno=verts,
                inuse=np.isin(np.arange(len(pos)), verts).astype(int),
                nuse=len(verts),
                np=len(pos),
                id=101,
                coord_frame=mne.io.constants.FIFF.FIFFV_COORD_HEAD,
            )
        )
    surf_src = mne.SourceSpaces(hemis)
    return dict(
        info=info,
        fwd=fwd,
        fwd_fixed=fwd_fixed,
        fwd_surf=fwd_surf,
        cov=cov,
        pos=pos,
        nn=nn,
        surf_src=surf_src,
    )


def _mne_operator(m, method, lambda2=1.0 / 9.0, fixed=True, depth=None):
    """MNE resolution matrix, kernel and gain (oracle)."""
    from mne.minimum_norm import make_inverse_operator, make_inverse_resolution_matrix
    from mne.minimum_norm.resolution_matrix import _get_matrix_from_inverse_operator

    if not fixed:
        fwd_inv = m["fwd"]
    else:  # MNE wants a free surface-oriented forward for fixed + depth weighting
        fwd_inv = m["fwd_fixed"] if depth is None else m["fwd_surf"]
    inv = make_inverse_operator(
        m["info"], fwd_inv, m["cov"], loose=0.0 if fixed else 1.0, fixed=fixed, depth=depth
    )
    R = make_inverse_resolution_matrix(m["fwd_fixed"], inv, method=method, lambda2=lambda2)
    K = _get_matrix_from_inverse_operator(inv, m["fwd_fixed"], method=method, lambda2=lambda2)
    G = m["fwd_fixed"]["sol"]["data"]
    return R, K, G


@pytest.fixture(scope="module")
def slor_fixed(mne_model):
    return _mne_operator(mne_model, "sLORETA")


@pytest.fixture(scope="module")
def dspm_free(mne_model):
    return _mne_operator(mne_model, "dSPM", fixed=False, depth=0.8)


def _mne_metric(R, src, function, metric):
    from mne.minimum_norm import resolution_metrics

    return resolution_metrics(R, src, function=function, metric=metric).data[:, 0]


def _maxrad_reference(R, pos, function, threshold=0.5, mne_axis_bug=False):
    """MNE's documented 'maxrad_ext' (loop over columns, strict > threshold x peak), metres.

    MNE 1.13's ``_spatial_extent`` indexes ``locations[np.where(...), :]`` which
    adds a leading axis, so its ``np.sum(..., 1)`` sums the squared coordinate
    differences over the supra-threshold *sources* and then takes the max over
    the three *coordinates*. ``mne_axis_bug=True`` reproduces that, to show the
    supra-threshold sets agree; exgsrc implements the documented radius.
    """
    M = np.abs(R if function == "psf" else R.T)
    out = np.empty(M.shape[1])
    for j in range(M.shape[1]):
        col = M[:, j]
        diff = pos[col > threshold * col.max()] - pos[j]
        out[j] = np.sqrt((diff**2).sum(axis=0).max() if mne_axis_bug else (diff**2).sum(1).max())
    return out


def _expected(R, m, name):
    """Oracle value of one metric in exgsrc units (m / dimensionless)."""
    func, metric = name.split("_", 1)
    if metric == "maxrad_ext":
        return _maxrad_reference(R, m["pos"], func)
    expected = _mne_metric(R, m["surf_src"], func, metric)
    return expected / 100.0 if metric.endswith("_err") or metric == "sd_ext" else expected


# --------------------------------------------------------------------------- parity


@pytest.mark.parity
def test_kernel_times_gain_is_mne_resolution_matrix(slor_fixed):
    R, K, G = slor_fixed
    np.testing.assert_allclose(K @ G, R, rtol=1e-10, atol=1e-12 * np.abs(R).max())


@pytest.mark.parity
@pytest.mark.parametrize("block_size", [None, 37])
def test_metrics_parity_fixed(mne_model, slor_fixed, block_size):
    R, K, G = slor_fixed
    ds = resolution_metrics_from_kernel(G, K, mne_model["pos"], block_size=block_size)
    assert set(ds.data_vars) == set(ALL_METRICS)
    for name in ALL_METRICS:
        expected = _expected(R, mne_model, name)
        np.testing.assert_allclose(ds[name].values, expected, rtol=RTOL, atol=1e-12, err_msg=name)


@pytest.mark.parity
def test_metrics_parity_mne_method_nontrivial(mne_model):
    """Plain MNE with depth weighting: PSF peaks are not at the source, so all metrics vary."""
    R, K, G = _mne_operator(mne_model, "MNE", depth=0.8)
    ds = resolution_metrics_from_kernel(G, K, mne_model["pos"], block_size=50)
    assert np.count_nonzero(ds["psf_peak_err"].values) > 10
    for name in ALL_METRICS:
        expected = _expected(R, mne_model, name)
        np.testing.assert_allclose(ds[name].values, expected, rtol=RTOL, atol=1e-12, err_msg=name)


@pytest.mark.parity
def test_metrics_parity_free_inverse(mne_model, dspm_free):
    """Free inverse, fixed forward: R is (3n, n); amplitudes are norms over orientations."""
    from mne.minimum_norm.spatial_resolution import _rectify_resolution_matrix

    R, K, G = dspm_free
    n = len(mne_model["pos"])
    assert R.shape == (3 * n, n)
    ds = resolution_metrics_from_kernel(G, K, mne_model["pos"], n_orient=3, block_size=100)
    assert ds.attrs["n_orient_inverse"] == 3
    R_sq = _rectify_resolution_matrix(R)
    for name in ALL_METRICS:
        # MNE's localisation errors rectify a (3n, n) matrix themselves
        R_in = R if name.endswith(("peak_err", "cog_err")) else R_sq
        expected = _expected(R_in, mne_model, name)
        np.testing.assert_allclose(ds[name].values, expected, rtol=RTOL, atol=1e-12, err_msg=name)


@pytest.mark.parity
@pytest.mark.parametrize(
    ("mode", "n_comp", "norm"),
    [(None, 1, None), ("mean", 1, "max"), ("max", 2, None), ("svd", 3, "norm"), ("sum", 1, None)],
)
@pytest.mark.parametrize("func", ["psf", "ctf"])
def test_psf_ctf_parity(mne_model, slor_fixed, dspm_free, mode, n_comp, norm, func):
    from mne.minimum_norm import get_cross_talk as mne_ctf
    from mne.minimum_norm import get_point_spread as mne_psf

    ours = get_point_spread if func == "psf" else get_cross_talk
    theirs = mne_psf if func == "psf" else mne_ctf
    src = mne_model["fwd"]["src"]
    idx = [3, 100, 250, 400]
    for R, _, _ in (slor_fixed, dspm_free):
        got = ours(R, idx, mode=mode, n_comp=n_comp, norm=norm)
        exp = theirs(R, src, idx, mode=mode, n_comp=n_comp, norm=norm).data
        assert got.shape == exp.shape
        np.testing.assert_allclose(got, exp, rtol=RTOL, atol=1e-12 * np.abs(exp).max())


@pytest.mark.parity
def test_psf_groups_and_pca_vars(mne_model, dspm_free):
    from mne.minimum_norm import get_point_spread as mne_psf

    R = dspm_free[0]
    groups = [[1, 2, 3], [200, 300]]
    got, var = get_point_spread(R, groups, mode="svd", n_comp=2, return_pca_vars=True)
    exp, evar = mne_psf(
        R, mne_model["fwd"]["src"], groups, mode="svd", n_comp=2, return_pca_vars=True
    )
    assert len(got) == 2
    for g, e, gv, ev in zip(got, exp, var, evar, strict=True):
        np.testing.assert_allclose(g, e.data, rtol=RTOL, atol=1e-14)
        np.testing.assert_allclose(gv, ev, rtol=RTOL)


@pytest.mark.parity
@pytest.mark.parametrize("func", ["psf", "ctf"])
def test_maxrad_threshold_set_matches_mne(mne_model, func):
    """MNE's own maxrad_ext equals the reference with MNE's axis slip: same supra-threshold sets."""
    R, _, _ = _mne_operator(mne_model, "MNE", depth=0.8)
    got = _mne_metric(R, mne_model["surf_src"], func, "maxrad_ext") / 100.0
    ref = _maxrad_reference(R, mne_model["pos"], func, mne_axis_bug=True)
    np.testing.assert_allclose(got, ref, rtol=RTOL)


@pytest.mark.parity
@pytest.mark.parametrize("func", ["psf", "ctf"])
def test_psf_ctf_parity_free_forward_free_inverse(mne_model, func):
    """R of shape (3n, 3n): both orientation triplets handled as MNE (n_sources given)."""
    from mne.minimum_norm import get_cross_talk as mne_ctf
    from mne.minimum_norm import get_point_spread as mne_psf
    from mne.minimum_norm import make_inverse_operator, make_inverse_resolution_matrix

    m = mne_model
    inv = make_inverse_operator(m["info"], m["fwd"], m["cov"], loose=1.0, depth=0.8)
    R = make_inverse_resolution_matrix(m["fwd"], inv, method="MNE", lambda2=1.0 / 9.0)
    n = len(m["pos"])
    assert R.shape == (3 * n, 3 * n)
    ours = get_point_spread if func == "psf" else get_cross_talk
    theirs = mne_psf if func == "psf" else mne_ctf
    for mode, n_comp in ((None, 1), ("svd", 2), ("max", 1)):
        got = ours(R, [10, 300], mode=mode, n_comp=n_comp, n_sources=n)
        exp = theirs(R, m["fwd"]["src"], [10, 300], mode=mode, n_comp=n_comp).data
        np.testing.assert_allclose(got, exp, rtol=RTOL, atol=1e-12 * np.abs(exp).max())


@pytest.mark.parity
@pytest.mark.parametrize("func", ["psf", "ctf"])
def test_functions_from_kernel_match_mne(mne_model, slor_fixed, dspm_free, func):
    """PSFs/CTFs from K and G (R never formed) equal MNE's on the full R."""
    from mne.minimum_norm import get_cross_talk as mne_ctf
    from mne.minimum_norm import get_point_spread as mne_psf

    theirs = mne_psf if func == "psf" else mne_ctf
    src = mne_model["fwd"]["src"]
    for R, K, G in (slor_fixed, dspm_free):
        for mode, n_comp, norm in ((None, 1, None), ("svd", 2, "max"), ("mean", 1, "norm")):
            got = get_functions_from_kernel(
                G, K, [[5, 6], [480]], function=func, mode=mode, n_comp=n_comp, norm=norm
            )
            exp = theirs(R, src, [[5, 6], [480]], mode=mode, n_comp=n_comp, norm=norm)
            for g, e in zip(got, exp, strict=True):
                np.testing.assert_allclose(g, e.data, rtol=RTOL, atol=1e-12 * np.abs(e.data).max())
    with pytest.raises(ValueError, match="function"):
        get_functions_from_kernel(G, K, 1, function="rtf")
    with pytest.raises(ValueError, match="486"):
        get_functions_from_kernel(G, K, 486)


# --------------------------------------------------------------------------- blocks / memory


def test_block_size_does_not_change_results(mne_model, dspm_free):
    R, K, G = dspm_free
    pos = mne_model["pos"]
    ref = resolution_metrics_from_kernel(G, K, pos, as_xarray=False).values
    for bs in (1, 13, 486, 10_000):
        got = resolution_metrics_from_kernel(G, K, pos, block_size=bs, as_xarray=False).values
        for name in ALL_METRICS:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=0, err_msg=name)
    # progress is reported after every block, PSFs then CTFs, ending at n_sources
    calls = []
    resolution_metrics_from_kernel(
        G, K, pos, block_size=13, as_xarray=False, progress=lambda *a: calls.append(a)
    )
    n = len(pos)
    steps = list(range(13, n, 13)) + [n]
    assert calls == [("psf", k, n) for k in steps] + [("ctf", k, n) for k in steps]
    # the memory cap also only changes blocking
    tiny = resolution_metrics_from_kernel(G, K, pos, max_block_bytes=50_000, as_xarray=False)
    assert tiny.meta["block_size_psf"] < 20
    for name in ALL_METRICS:
        np.testing.assert_allclose(tiny.values[name], ref[name], rtol=1e-12, atol=0)


def test_free_forward_columns_use_norm_over_both_orientations():
    """Free gain: amplitude of R[i, j] is the Frobenius norm of its 3x3 block (explicit R)."""
    rng = np.random.default_rng(1)
    n, n_ch = 40, 12
    pos = rng.uniform(-0.05, 0.05, (n, 3))
    G = rng.standard_normal((n_ch, 3 * n))
    K = rng.standard_normal((3 * n, n_ch))
    R = K @ G
    A = np.sqrt((R.reshape(n, 3, n, 3) ** 2).sum(axis=(1, 3)))  # (target, source)
    res = resolution_metrics_from_kernel(G, K, pos, block_size=7, as_xarray=False).values
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=2)
    np.testing.assert_allclose(
        res["psf_peak_err"], d[A.argmax(axis=0), np.arange(n)], rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(
        res["ctf_peak_err"], d[A.argmax(axis=1), np.arange(n)], rtol=1e-12, atol=1e-15
    )
    sd = np.sqrt((d**2 * A**2).sum(axis=0) / (A**2).sum(axis=0))
    np.testing.assert_allclose(res["psf_sd_ext"], sd, rtol=1e-9)
    np.testing.assert_allclose(res["ctf_sum_amp"], A.sum(1) / A.sum(1).max(), rtol=1e-12)


def test_memory_is_bounded_by_blocks():
    """2000 sources: full R would take 32 MB (with copies ~65 MB); 4 MB blocks stay far below."""
    rng = np.random.default_rng(0)
    n, n_ch = 2000, 16
    pos = rng.standard_normal((n, 3))
    pos = 0.07 * pos / np.linalg.norm(pos, axis=1, keepdims=True)
    G = rng.standard_normal((n_ch, n))
    K = rng.standard_normal((n, n_ch))
    tracemalloc.start()
    try:
        res = resolution_metrics_from_kernel(G, K, pos, max_block_bytes=4 * 2**20, as_xarray=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.meta["block_size_psf"] < n // 10
    assert peak < 16 * 2**20, f"peak traced memory {peak / 2**20:.1f} MB"


# --------------------------------------------------------------------------- properties


def test_sloreta_fixed_no_depth_peak_error_exactly_zero(mne_model, slor_fixed):
    _, K, G = slor_fixed
    ds = resolution_metrics_from_kernel(G, K, mne_model["pos"], metrics=["psf_peak_err"])
    assert list(ds.data_vars) == ["psf_peak_err"]
    assert np.all(ds["psf_peak_err"].values == 0.0)


def test_mne_superficial_bias_reduced_by_depth_weighting(mne_model):
    """Plain MNE pulls deep sources to the outer shell; depth weighting (0.8, 2.0) reduces it."""
    pos = mne_model["pos"]
    radius = np.linalg.norm(pos - R0, axis=1)
    deep = radius < 0.04
    outward, ple = {}, {}
    for depth in (None, 0.8, 2.0):
        _, K, G = _mne_operator(mne_model, "MNE", depth=depth)
        peak = np.abs(K @ G).argmax(axis=0)  # small problem: explicit R for the peaks
        outward[depth] = np.mean(radius[peak][deep] - radius[deep])
        ds = resolution_metrics_from_kernel(G, K, pos, metrics=["psf_peak_err"], block_size=64)
        ple[depth] = ds["psf_peak_err"].values[deep].mean()
    assert outward[None] > 0.03  # deep shell (3 cm) seen on the outer shell (6.5 cm)
    assert outward[None] > outward[0.8] > outward[2.0]
    assert ple[None] > ple[0.8] > ple[2.0]
    assert ple[2.0] < 0.5 * ple[None]


def test_xarray_labels(mne_model, slor_fixed):
    _, K, G = slor_fixed
    ds = resolution_metrics_from_kernel(
        G, K, mne_model["pos"], metrics=["ctf_sd_ext", "psf_sum_amp"], meta={"method": "sLORETA"}
    )
    assert ds["ctf_sd_ext"].dims == ("source",)
    assert ds["ctf_sd_ext"].attrs["units"] == "m"
    assert ds["psf_sum_amp"].attrs["units"] == "dimensionless"
    np.testing.assert_array_equal(ds["x"].values, mne_model["pos"][:, 0])
    assert ds["z"].attrs["units"] == "m"
    assert ds.attrs["method"] == "sLORETA"
    alias = resolution_metrics_from_kernel(
        G, K, mne_model["pos"], metrics=["ctf_spatial_spread", "psf_peak_localisation_error"]
    )
    assert sorted(alias.data_vars) == ["ctf_sd_ext", "psf_peak_err"]
    np.testing.assert_array_equal(alias["ctf_sd_ext"].values, ds["ctf_sd_ext"].values)
    assert ds["psf_sum_amp"].max() == 1.0


# --------------------------------------------------------------------------- errors


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((8, 10))
    K = rng.standard_normal((10, 8))
    pos = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="psf_peak_error"):
        resolution_metrics_from_kernel(G, K, pos, metrics=["psf_peak_error"])
    with pytest.raises(ValueError, match="xyz_peak_err"):
        resolution_metrics_from_kernel(G, K, pos, metrics=["xyz_peak_err"])
    with pytest.raises(ValueError, match="channels"):
        resolution_metrics_from_kernel(G, K[:, :7], pos)
    with pytest.raises(ValueError, match="kernel rows"):
        resolution_metrics_from_kernel(G, K[:9], pos)
    with pytest.raises(ValueError, match="gain columns"):
        resolution_metrics_from_kernel(G[:, :9], K, pos)
    with pytest.raises(ValueError, match="n_orient"):
        resolution_metrics_from_kernel(G, K, pos, n_orient=3)
    with pytest.raises(ValueError, match="kernel contains non-finite"):
        resolution_metrics_from_kernel(G, np.where(K > 1, np.nan, K), pos)
    with pytest.raises(ValueError, match="threshold"):
        resolution_metrics_from_kernel(G, K, pos, threshold=1.0)
    with pytest.raises(ValueError, match="block_size"):
        resolution_metrics_from_kernel(G, K, pos, block_size=0)
    R = K @ G
    with pytest.raises(ValueError, match="10"):
        get_point_spread(R, [2, 10])
    with pytest.raises(ValueError, match="-1"):
        get_cross_talk(R, -1)
    with pytest.raises(ValueError, match="mode"):
        get_point_spread(R, 1, mode="median")
    with pytest.raises(ValueError, match="n_comp"):
        get_point_spread(R, [1, 2], mode="mean", n_comp=2)
    with pytest.raises(ValueError, match="norm"):
        get_cross_talk(R, 1, norm="l1")
    with pytest.raises(ValueError, match="resolution matrix rows"):
        get_point_spread(R[:9], 1, n_sources=10)


# --------------------------------------------------------------------------- object layer
# (exgsrc.forward / exgsrc.inverse; the forward gain is MNE's, so differences in R
#  come from the inverse and resolution layers only)


def _ours_from_mne(m, free=False):
    from exgsrc.covariance import NoiseCov
    from exgsrc.forward import Forward
    from exgsrc.source_space import discrete_source_space

    src = discrete_source_space(m["pos"], m["nn"])
    f = m["fwd"] if free else m["fwd_fixed"]
    names = tuple(m["info"]["ch_names"])
    ch_pos = np.array([ch["loc"][:3] for ch in m["info"]["chs"]])
    fwd = Forward(
        gain=np.array(f["sol"]["data"]),
        ch_names=names,
        ch_pos=ch_pos,
        src=src,
        orientation="free" if free else "fixed",
    )
    data = np.array(m["cov"].data)
    data = np.diag(data) if m["cov"]["diag"] else data
    cov = NoiseCov(data=data, ch_names=names, nfree=1, method="ad_hoc")
    return fwd, cov


@pytest.mark.parity
@pytest.mark.parametrize(
    ("method", "fixed", "depth"), [("sLORETA", True, None), ("dSPM", False, 0.8)]
)
def test_make_resolution_matrix_parity(mne_model, method, fixed, depth):
    inverse = importlib.import_module("exgsrc.inverse")
    from exgsrc.resolution import make_resolution_matrix, resolution_metrics

    R_mne, _, _ = _mne_operator(mne_model, method, fixed=fixed, depth=depth)
    fwd, cov = _ours_from_mne(mne_model, free=not fixed)
    inv = inverse.make_inverse_operator(
        fwd, cov, loose=0.0 if fixed else 1.0, fixed=fixed, depth=depth
    )
    R = make_resolution_matrix(fwd.to_fixed(), inv, lambda2=1.0 / 9.0, method=method)
    assert R.shape == R_mne.shape
    np.testing.assert_allclose(R, R_mne, rtol=RTOL, atol=RTOL * np.abs(R_mne).max())
    ds = resolution_metrics(fwd.to_fixed(), inv, lambda2=1.0 / 9.0, method=method, block_size=97)
    assert ds.attrs["method"] == method
    from mne.minimum_norm.spatial_resolution import _rectify_resolution_matrix

    R_sq = _rectify_resolution_matrix(R_mne)
    for name in ("psf_peak_err", "psf_sd_ext", "ctf_cog_err", "ctf_peak_amp"):
        exp = _expected(R_sq, mne_model, name)
        np.testing.assert_allclose(ds[name].values, exp, rtol=RTOL, atol=1e-9, err_msg=name)


@pytest.mark.parity
def test_make_resolution_matrix_loose_parity(mne_model):
    """Loose operator: fixed forward equals MNE; free forward equals MNE's R rotated to x, y, z."""
    inverse = importlib.import_module("exgsrc.inverse")
    from mne.minimum_norm import make_inverse_operator, make_inverse_resolution_matrix

    from exgsrc.resolution import make_resolution_matrix

    m = mne_model
    n = len(m["pos"])
    inv_mne = make_inverse_operator(m["info"], m["fwd_surf"], m["cov"], loose=0.2, depth=0.8)
    fwd, cov = _ours_from_mne(m, free=True)
    inv = inverse.make_inverse_operator(fwd, cov, loose=0.2, depth=0.8)
    R_fixed_mne = make_inverse_resolution_matrix(m["fwd_fixed"], inv_mne, method="dSPM")
    R_fixed = make_resolution_matrix(fwd.to_fixed(), inv, method="dSPM")
    scale = np.abs(R_fixed_mne).max()
    np.testing.assert_allclose(R_fixed, R_fixed_mne, rtol=RTOL, atol=RTOL * scale)
    R_free_mne = make_inverse_resolution_matrix(m["fwd"], inv_mne, method="dSPM")
    frames = m["fwd_surf"]["source_nn"].reshape(n, 3, 3)  # MNE's (t1, t2, n) per source
    R_free_mne_xyz = np.einsum("rvk,vkx->rvx", R_free_mne.reshape(3 * n, n, 3), frames)
    R_free = make_resolution_matrix(fwd, inv, method="dSPM")
    np.testing.assert_allclose(
        R_free, R_free_mne_xyz.reshape(3 * n, 3 * n), rtol=RTOL, atol=RTOL * scale
    )


def test_sloreta_zero_peak_error_with_exgsrc_operators():
    """exgsrc forward + inverse on an ico-3 sphere: sLORETA PSF peaks at every source."""
    inverse = importlib.import_module("exgsrc.inverse")
    from exgsrc.covariance import NoiseCov
    from exgsrc.forward import SphereModel, make_sphere_forward
    from exgsrc.resolution import resolution_metrics
    from exgsrc.source_space import ico_source_space

    src = ico_source_space(3, 0.06, center=R0)
    el = _electrodes(64, seed=5)
    names = [f"E{i:02d}" for i in range(len(el))]
    fwd = make_sphere_forward(el, src, SphereModel.mne_default(), ch_names=names)
    cov = NoiseCov(data=np.eye(len(names)) * 4e-14, ch_names=tuple(names), nfree=1, method="x")
    inv = inverse.make_inverse_operator(fwd, cov, loose=0.0, depth=None, fixed=True)
    ds = resolution_metrics(fwd, inv, lambda2=1.0 / 9.0, method="sLORETA")
    assert ds.sizes["source"] == 642
    assert np.all(ds["psf_peak_err"].values == 0.0)
    assert np.all(ds["psf_peak_amp"].values > 0)


def test_mismatched_forward_and_inverse_raise(mne_model):
    inverse = importlib.import_module("exgsrc.inverse")
    from dataclasses import replace

    from exgsrc.resolution import make_resolution_matrix, resolution_metrics
    from exgsrc.source_space import discrete_source_space

    fwd, cov = _ours_from_mne(mne_model)
    inv = inverse.make_inverse_operator(fwd, cov, loose=0.0, fixed=True, depth=None)
    fewer = fwd.pick_channels(fwd.ch_names[:-1])
    with pytest.raises(ValueError, match=fwd.ch_names[-1]):
        make_resolution_matrix(fewer, inv)
    moved = replace(fwd, src=discrete_source_space(mne_model["pos"] + 0.001, mne_model["nn"]))
    with pytest.raises(ValueError, match="source space"):
        resolution_metrics(moved, inv)
    with pytest.raises(ValueError, match="sd_width"):
        resolution_metrics(fwd, inv, metrics=["psf_sd_width"])


def test_volume_grid_free_orientation_matches_explicit_r():
    """Volume grid, free forward, free dSPM: blocked metrics equal those of the explicit R."""
    inverse = importlib.import_module("exgsrc.inverse")
    from exgsrc.covariance import NoiseCov
    from exgsrc.forward import SphereModel, make_sphere_forward_free
    from exgsrc.resolution import make_resolution_matrix, resolution_metrics
    from exgsrc.source_space import grid_source_space

    src = grid_source_space(0.015, 0.07, center=R0)
    el = _electrodes(32, seed=2)
    names = [f"E{i:02d}" for i in range(len(el))]
    fwd = make_sphere_forward_free(el, src, SphereModel.mne_default(), ch_names=names)
    cov = NoiseCov(data=np.eye(len(names)) * 4e-14, ch_names=tuple(names), nfree=1, method="x")
    inv = inverse.make_inverse_operator(fwd, cov, loose=1.0, depth=0.8)
    ds = resolution_metrics(fwd, inv, method="dSPM", block_size=11)
    R = make_resolution_matrix(fwd, inv, method="dSPM")
    n = src.n_sources
    assert R.shape == (3 * n, 3 * n)
    A = np.sqrt((R.reshape(n, 3, n, 3) ** 2).sum(axis=(1, 3)))  # (target, source)
    d = np.linalg.norm(src.pos[:, None] - src.pos[None], axis=2)
    cols = np.arange(n)
    tol = dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ds["psf_peak_err"].values, d[A.argmax(axis=0), cols], **tol)
    np.testing.assert_allclose(ds["ctf_peak_err"].values, d[A.argmax(axis=1), cols], **tol)
    cog = (A.T @ src.pos) / A.sum(axis=0)[:, None]
    np.testing.assert_allclose(
        ds["psf_cog_err"].values, np.linalg.norm(cog - src.pos, axis=1), rtol=1e-9
    )
    big = A > 0.5 * A.max(axis=0)
    np.testing.assert_allclose(
        ds["psf_maxrad_ext"].values, np.where(big, d, 0).max(axis=0), rtol=1e-9, atol=1e-12
    )
    assert ds.attrs["n_orient_forward"] == 3 and ds.attrs["n_orient_inverse"] == 3
