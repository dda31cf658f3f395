"""Inverse operators (MNE, dSPM, sLORETA, eLORETA) against MNE-Python."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.covariance import NoiseCov
from exgsrc.forward import Forward
from exgsrc.inverse import (
    PreparedInverse,
    SourceEstimate,
    apply_inverse,
    apply_inverse_epochs,
    iter_apply_inverse,
    make_inverse_operator,
    prepare_inverse,
)
from exgsrc.source_space import SourceSpace

mne = importlib.import_module("mne")

METHODS = ("MNE", "dSPM", "sLORETA", "eLORETA")
# (loose, pick_ori) combinations valid in MNE
ORIS = [
    (0.0, None),
    (0.2, None),
    (0.2, "normal"),
    (0.2, "vector"),
    (1.0, None),
    (1.0, "normal"),
    (1.0, "vector"),
]
DEPTHS = (0.8, None)
MONTAGES = {"biosemi32-ico2": ("biosemi32", 2), "biosemi64-ico3": ("biosemi64", 3)}
NAVE = 3
LAMBDA2 = 1.0 / 9.0


def _ico_positions(grade):
    from mne.surface import _get_ico_surface

    unit = _get_ico_surface(grade)["rr"]
    return unit * 0.06 + np.array([0.0, 0.0, 0.04]), unit.copy()


def _build_case(montage_name, grade, seed, rank_deficient):
    mne.set_log_level("error")
    rr, nn = _ico_positions(grade)
    src = mne.setup_volume_source_space(pos=dict(rr=rr, nn=nn), sphere=(0, 0, 0.04, 0.09))
    pos = mne.channels.make_standard_montage(montage_name).get_positions()["ch_pos"]
    names = list(pos)
    info = mne.create_info(names, 250.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(pos, coord_frame="head"))
    sphere = mne.make_sphere_model(r0=(0, 0, 0.04), head_radius=0.09, info=info)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere)
    fwd_surf = mne.convert_forward_solution(fwd, surf_ori=True)
    rng = np.random.default_rng(seed)
    n = len(names)
    mix = rng.standard_normal((n, n))
    noise = mix @ rng.standard_normal((n, 3000)) * 1e-6
    if rank_deficient:  # covariance of average-referenced data: rank n - 1
        noise -= noise.mean(axis=0)
    cov_data = noise @ noise.T / noise.shape[1]
    cov_mne = mne.Covariance(cov_data, names, [], [], noise.shape[1])
    data = rng.standard_normal((n, 40)) * 1e-6
    evoked = mne.EvokedArray(data, info, tmin=-0.02, nave=NAVE)
    evoked.set_eeg_reference(projection=True)
    s = src[0]
    ours_src = SourceSpace(s["rr"][s["vertno"]], s["nn"][s["vertno"]], kind="discrete")
    ours_fwd = Forward(
        np.array(fwd["_orig_sol"], dtype=np.float64),
        tuple(names),
        np.array(list(pos.values())),
        ours_src,
        "free",
    )
    # our covariance in a shuffled channel order: matched by name
    perm = rng.permutation(n)
    ours_cov = NoiseCov(cov_data[np.ix_(perm, perm)], tuple(names[i] for i in perm), 2999)
    return dict(
        info=evoked.info,
        fwd_surf=fwd_surf,
        cov_mne=cov_mne,
        evoked=evoked,
        data=data,
        names=names,
        ours_fwd=ours_fwd,
        ours_cov=ours_cov,
        cache={},
    )


@pytest.fixture(scope="module", autouse=True)
def _single_thread_blas(single_thread_blas):
    """Small matrices: BLAS threads only add contention on shared CI cores."""


@pytest.fixture(scope="module")
def cases():
    return {
        "biosemi32-ico2": _build_case("biosemi32", 2, 0, rank_deficient=False),
        "biosemi64-ico3": _build_case("biosemi64", 3, 1, rank_deficient=True),
    }


def _operators(case, loose, depth):
    key = (loose, depth)
    if key not in case["cache"]:
        fixed = loose == 0.0
        minv = mne.minimum_norm.make_inverse_operator(
            case["info"],
            case["fwd_surf"],
            case["cov_mne"],
            loose=loose,
            depth=depth,
            fixed=True if fixed else "auto",
        )
        inv = make_inverse_operator(
            case["ours_fwd"], case["ours_cov"], loose=loose, depth=depth, fixed=fixed
        )
        case["cache"][key] = (minv, inv)
    return case["cache"][key]


def _rel_err(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parity
@pytest.mark.parametrize("montage", list(MONTAGES))
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(("loose", "pick_ori"), ORIS)
@pytest.mark.parametrize("method", METHODS)
def test_apply_inverse_parity(cases, montage, depth, loose, pick_ori, method):
    case = cases[montage]
    minv, inv = _operators(case, loose, depth)
    stc = mne.minimum_norm.apply_inverse(case["evoked"], minv, LAMBDA2, method, pick_ori=pick_ori)
    ours = apply_inverse(
        case["data"], inv, LAMBDA2, method, pick_ori, nave=NAVE, times=case["evoked"].times
    )
    assert ours.data.shape == stc.data.shape
    # MNE rounds fixed-orientation gains to float32 (convert_forward_solution),
    # which alone gives ~1e-7 relative differences for loose=0.
    tol = 1e-4 if method == "eLORETA" else 1e-6
    assert _rel_err(ours.data, stc.data) <= tol
    np.testing.assert_allclose(ours.times, stc.times)
    # referenced or not: the same estimate
    reref = apply_inverse(
        case["data"] - case["data"].mean(0), inv, LAMBDA2, method, pick_ori, NAVE
    )
    assert _rel_err(reref.data, ours.data) <= 1e-10


@pytest.mark.parity
def test_operator_factors_parity(cases):
    case = cases["biosemi64-ico3"]
    minv, inv = _operators(case, 0.2, 0.8)
    np.testing.assert_allclose(inv.sing, minv["sing"], rtol=1e-8, atol=1e-8 * inv.sing[0])
    np.testing.assert_allclose(inv.depth_prior, minv["depth_prior"]["data"], rtol=1e-10)
    np.testing.assert_allclose(inv.orient_prior, minv["orient_prior"]["data"], rtol=1e-12)
    np.testing.assert_allclose(inv.source_cov, minv["source_cov"]["data"], rtol=1e-8)
    assert inv.rank == int(np.sum(minv["noise_cov"]["eig"] > 0)) == len(case["names"]) - 1
    assert inv.orientation == "loose" and inv.n_orient == 3


@pytest.mark.parity
def test_epochs_parity(cases):
    case = cases["biosemi32-ico2"]
    minv, inv = _operators(case, 1.0, 0.8)
    rng = np.random.default_rng(5)
    ep = rng.standard_normal((4, len(case["names"]), 30)) * 1e-6
    epochs = mne.EpochsArray(ep, case["info"], tmin=0.0)
    ref = mne.minimum_norm.apply_inverse_epochs(epochs, minv, LAMBDA2, "sLORETA", nave=1)
    ours = apply_inverse_epochs(ep, inv, LAMBDA2, "sLORETA", nave=1, times=epochs.times)
    assert len(ours) == 4
    for a, b in zip(ours, ref, strict=True):
        assert _rel_err(a.data, b.data) <= 1e-6


@pytest.mark.parity
def test_iter_apply_matches_mne_raw(cases):
    case = cases["biosemi32-ico2"]
    minv, inv = _operators(case, 1.0, 0.8)
    rng = np.random.default_rng(6)
    raw_data = rng.standard_normal((len(case["names"]), 9003)) * 1e-6
    raw = mne.io.RawArray(raw_data, case["info"])
    for method in ("dSPM", "sLORETA"):
        ref = mne.minimum_norm.apply_inverse_raw(raw, minv, LAMBDA2, method).data
        prep = prepare_inverse(inv, 1, LAMBDA2, method)
        # one call: several internal cache blocks (pick_ori=None on a free operator)
        assert _rel_err(prep.apply(raw_data), ref) <= 1e-6
        out = np.empty_like(ref)
        seen = []
        for sl, block in iter_apply_inverse(raw_data, prep, block_size=2500):
            assert block.shape[-1] <= 2500
            out[:, sl] = block
            seen.append((sl.start, sl.stop))
        assert seen[0] == (0, 2500) and seen[-1] == (7500, 9003)
        assert _rel_err(out, ref) <= 1e-6
        # single precision option: same numbers to float32 accuracy
        prep32 = prepare_inverse(inv, 1, LAMBDA2, method, dtype=np.float32)
        sol32 = prep32.apply(raw_data)
        assert sol32.dtype == np.float32 and _rel_err(sol32, ref) <= 1e-5
    with pytest.raises(ValueError, match="dtype"):
        prepare_inverse(inv, 1, LAMBDA2, "dSPM", dtype=np.int32)


def test_apply_same_for_any_worker_count(cases, monkeypatch):
    """The threaded applies give the same values, in the same order, whatever
    rows or source ranges the workers own (to BLAS rounding: the row count of
    each part changes the summation order inside the matmul)."""
    import exgsrc.inverse as inverse_module

    case = cases["biosemi32-ico2"]
    _, inv = _operators(case, 0.2, 0.8)
    rng = np.random.default_rng(11)
    # each large enough for its threaded path (>= 4e6 output values)
    for pick_ori, n_times in ((None, 9_001), ("normal", 25_001), ("vector", 9_001)):
        data = rng.standard_normal((len(case["names"]), n_times)) * 1e-6
        prep = prepare_inverse(inv, 1, LAMBDA2, "sLORETA", pick_ori=pick_ori)
        product = prep.kernel @ data
        if pick_ori is None:
            expected = np.linalg.norm(product.reshape(prep.n_sources, 3, -1), axis=1)
        elif pick_ori == "vector":
            expected = product.reshape(prep.n_sources, 3, -1)
        else:
            expected = product
        scale = np.abs(expected).max()
        for n_cpus in (1, 2, 3, 7):
            monkeypatch.setattr(inverse_module, "thread_budget", lambda n=n_cpus: n)
            result = prep.apply(data)
            assert result.shape == expected.shape
            np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-14 * scale)
            # into a caller's buffer: same numbers, the buffer itself is returned
            buf = np.empty_like(expected)
            assert prep.apply(data, out=buf) is buf
            np.testing.assert_array_equal(buf, result)
    assert len(prep._split_kernels) == 0  # vector output never builds the norm tiles


def test_prepared_kernel_layout(cases):
    case = cases["biosemi32-ico2"]
    _, inv = _operators(case, 0.2, 0.8)
    n_src, n_ch = inv.n_sources, inv.n_channels
    p_none = prepare_inverse(inv, 1, LAMBDA2, "dSPM")
    p_vec = prepare_inverse(inv, 1, LAMBDA2, "dSPM", pick_ori="vector")
    p_nrm = prepare_inverse(inv, 1, LAMBDA2, "dSPM", pick_ori="normal")
    assert isinstance(p_none, PreparedInverse)
    assert p_none.kernel.shape == (3 * n_src, n_ch) and p_none.n_orient == 3 and p_none.combine
    assert p_vec.kernel.shape == (3 * n_src, n_ch) and not p_vec.combine
    assert p_nrm.kernel.shape == (n_src, n_ch) and p_nrm.n_orient == 1
    x = case["data"]
    vec = p_vec.apply(x)
    # the magnitude equals the norm of the vector estimate, the normal its projection
    np.testing.assert_allclose(p_none.apply(x), np.linalg.norm(vec, axis=1), rtol=1e-10)
    nn = inv.src.nn / np.linalg.norm(inv.src.nn, axis=1)[:, None]
    np.testing.assert_allclose(
        p_nrm.apply(x), np.einsum("vk,vkt->vt", nn, vec), rtol=1e-8, atol=1e-12 * np.abs(vec).max()
    )
    # data channel order handled by name; extra channels ignored
    perm = np.random.default_rng(2).permutation(n_ch)
    names = [case["names"][i] for i in perm] + ["EXTRA"]
    shuffled = np.vstack([x[perm], np.ones((1, x.shape[1]))])
    a = apply_inverse(shuffled, p_none, ch_names=names)
    np.testing.assert_allclose(a.data, p_none.apply(x), rtol=1e-12)


def test_source_estimate_to_xarray(cases):
    case = cases["biosemi32-ico2"]
    _, inv = _operators(case, 0.2, 0.8)
    times = np.arange(case["data"].shape[1]) / 250.0
    stc = apply_inverse(case["data"], inv, LAMBDA2, "dSPM", "vector", times=times)
    assert isinstance(stc, SourceEstimate) and stc.orientation == "vector"
    ds = stc.to_xarray()
    assert ds["stc"].dims == ("source", "orientation", "time")
    assert list(ds["orientation"].values) == ["x", "y", "z"]
    assert ds["stc"].attrs["units"] == "dimensionless"
    np.testing.assert_allclose(ds["x"].values, inv.src.pos[:, 0])
    assert ds["x"].attrs["units"] == "m" and ds["time"].attrs["units"] == "s"
    assert ds.attrs["method"] == "dSPM" and ds.attrs["nave"] == 1
    back = SourceEstimate.from_xarray(ds, inv.src)
    np.testing.assert_array_equal(back.data, stc.data)
    mne_stc = apply_inverse(case["data"], inv, LAMBDA2, "MNE", None, times=times)
    ds2 = mne_stc.to_xarray()
    assert ds2["stc"].dims == ("source", "time") and ds2["stc"].attrs["units"] == "A·m"


# ---------------------------------------------------------------------------
# bad input


def test_bad_inputs(cases):
    case = cases["biosemi32-ico2"]
    fwd, cov = case["ours_fwd"], case["ours_cov"]
    _, inv = _operators(case, 1.0, 0.8)
    bad = cov.data.copy()
    bad[0, 0] = -abs(bad).max()  # indefinite
    with pytest.raises(ValueError, match="positive semi-definite"):
        make_inverse_operator(fwd, bad)
    asym = cov.data.copy()
    asym[0, 1] += abs(asym).max()
    with pytest.raises(ValueError, match="symmetric"):
        make_inverse_operator(fwd, asym)
    short = NoiseCov(cov.data[1:, 1:], cov.ch_names[1:], 10)
    with pytest.raises(
        ValueError, match=rf"missing from the noise covariance: \['{cov.ch_names[0]}'\]"
    ):
        make_inverse_operator(fwd, short)
    data = case["data"].copy()
    data[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        apply_inverse(data, inv)
    data[3, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        apply_inverse(data, inv)
    with pytest.raises(ValueError, match=rf"missing from data: \['{case['names'][0]}'\]"):
        apply_inverse(case["data"][1:], inv, ch_names=case["names"][1:])
    for lam in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="lambda2"):
            prepare_inverse(inv, 1, lam, "dSPM")
    with pytest.raises(ValueError, match="unknown method 'LORETA'"):
        prepare_inverse(inv, 1, LAMBDA2, "LORETA")
    with pytest.raises(ValueError, match="unknown pick_ori 'tangential'"):
        prepare_inverse(inv, 1, LAMBDA2, "dSPM", pick_ori="tangential")
    with pytest.raises(ValueError, match="loose must be in"):
        make_inverse_operator(fwd, cov, loose=1.5)
    # volume source space: no normals
    vol_src = SourceSpace(fwd.src.pos, fwd.src.nn, kind="volume")
    vol_fwd = Forward(fwd.gain, fwd.ch_names, fwd.ch_pos, vol_src, "free")
    with pytest.raises(ValueError, match="needs source normals"):
        make_inverse_operator(vol_fwd, cov, loose=0.2)
    vol_inv = make_inverse_operator(vol_fwd, cov, loose=1.0)
    with pytest.raises(ValueError, match="pick_ori='normal' needs source normals"):
        prepare_inverse(vol_inv, 1, LAMBDA2, "dSPM", pick_ori="normal")
    fixed_inv = make_inverse_operator(fwd, cov, fixed=True)
    with pytest.raises(ValueError, match="fixed"):
        prepare_inverse(fixed_inv, 1, LAMBDA2, "dSPM", pick_ori="vector")
    with pytest.raises(ValueError, match="nave"):
        prepare_inverse(inv, 0, LAMBDA2, "dSPM")
    n_t = case["data"].shape[1]
    prep = prepare_inverse(inv, 1, LAMBDA2, "sLORETA")
    good = np.empty((inv.n_sources, n_t))
    assert prep.apply(case["data"], out=good) is good
    for wrong in (np.empty((inv.n_sources, n_t + 1)), good.astype(np.float32), good.T.copy().T):
        with pytest.raises(ValueError, match="out must be a C-contiguous float64 array"):
            prep.apply(case["data"], out=wrong)
    with pytest.raises(ValueError, match=rf"times has shape \(3,\), expected \({n_t},\)"):
        apply_inverse(case["data"], inv, times=np.arange(3.0))
    epochs = np.stack([case["data"]] * 2)
    with pytest.raises(ValueError, match=rf"times has shape \(3,\), expected \({n_t},\)"):
        apply_inverse_epochs(epochs, inv, times=np.arange(3.0))


# ---------------------------------------------------------------------------
# fixed-orientation forward input


@pytest.mark.parity
@pytest.mark.parametrize("depth", [None, 0.8])
@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA", "eLORETA"])
def test_fixed_forward_parity(cases, depth, method):
    case = cases["biosemi32-ico2"]
    key = ("fixed-fwd", depth)
    if key not in case["cache"]:
        fwd_fixed = mne.convert_forward_solution(case["fwd_surf"], force_fixed=True)
        # MNE needs allow_fixed_depth for depth weighting of a fixed forward
        mdepth = None if depth is None else dict(exp=depth, allow_fixed_depth=True)
        minv = mne.minimum_norm.make_inverse_operator(
            case["info"], fwd_fixed, case["cov_mne"], loose=0.0, depth=mdepth, fixed=True
        )
        ofwd = case["ours_fwd"]
        ours = Forward(
            np.array(fwd_fixed["sol"]["data"], dtype=np.float64),
            ofwd.ch_names,
            ofwd.ch_pos,
            ofwd.src,
            "fixed",
        )
        inv = make_inverse_operator(ours, case["ours_cov"], loose=0.0, depth=depth)
        case["cache"][key] = (minv, inv)
    minv, inv = case["cache"][key]
    # MNE keeps a converted fixed gain in float32 and forms its column norms in
    # float32: the depth prior agrees to ~1e-7 only
    if depth is not None:
        np.testing.assert_allclose(inv.depth_prior, minv["depth_prior"]["data"], rtol=1e-6)
    stc = mne.minimum_norm.apply_inverse(case["evoked"], minv, LAMBDA2, method)
    ours = apply_inverse(case["data"], inv, LAMBDA2, method, nave=NAVE)
    tol = 1e-4 if method == "eLORETA" else (1e-8 if depth is None else 1e-6)
    assert _rel_err(ours.data, stc.data) <= tol


def test_sloreta_zero_localisation_error_with_exgsrc_forward():
    """Noise-free single dipoles: sLORETA peaks at the true source (exact property)."""
    from exgsrc.forward import SphereModel, make_sphere_forward
    from exgsrc.source_space import ico_source_space

    pos = mne.channels.make_standard_montage("biosemi64").get_positions()["ch_pos"]
    names = tuple(pos)
    el = np.array(list(pos.values()))
    el = 0.09 * el / np.linalg.norm(el, axis=1)[:, None]  # on the scalp sphere
    src = ico_source_space(2, 0.06)
    fwd = make_sphere_forward(el, src, SphereModel.mne_default(center=(0.0, 0.0, 0.0)), names)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((len(names), 4000))
    cov = x @ x.T / 4000 * 1e-12
    inv = make_inverse_operator(fwd, cov, loose=0.0, depth=None)
    prep = prepare_inverse(inv, 1, 1e-6, "sLORETA")
    idx = rng.choice(src.n_sources, 20, replace=False)
    est = np.abs(prep.apply(fwd.gain[:, idx] * 1e-8))
    np.testing.assert_array_equal(np.argmax(est, axis=0), idx)


def test_iter_apply_streams_memmap_to_memmap(cases, tmp_path):
    """Long data on disk -> estimate on disk, never the whole matrix in memory."""
    case = cases["biosemi32-ico2"]
    _, inv = _operators(case, 0.2, 0.8)
    prep = prepare_inverse(inv, 1, LAMBDA2, "sLORETA")
    n_ch, n_t = len(case["names"]), 5000
    src_file = np.lib.format.open_memmap(tmp_path / "raw.npy", "w+", np.float64, (n_ch, n_t))
    src_file[:] = np.random.default_rng(8).standard_normal((n_ch, n_t)) * 1e-6
    src_file.flush()
    raw = np.load(tmp_path / "raw.npy", mmap_mode="r")
    dest = np.lib.format.open_memmap(tmp_path / "stc.npy", "w+", np.float64, (prep.n_sources, n_t))
    for sl, block in iter_apply_inverse(raw, prep, block_size=1200):
        dest[:, sl] = block
    dest.flush()
    del dest
    out = np.load(tmp_path / "stc.npy")
    np.testing.assert_allclose(out, prep.apply(np.asarray(raw)), rtol=1e-12)
    with pytest.raises(ValueError, match="block_size"):
        next(iter_apply_inverse(raw, prep, block_size=0))


@pytest.mark.parametrize(("loose", "depth"), [(0.2, 0.8), (0.0, None)])
def test_inverse_netcdf_round_trip(cases, tmp_path, loose, depth):
    """InverseOperator -> netCDF (exgsrc.store) -> InverseOperator: identical kernels."""
    from exgsrc.store import load_inverse, write_netcdf

    case = cases["biosemi32-ico2"]
    _, inv = _operators(case, loose, depth)
    path = write_netcdf(inv.to_xarray(), tmp_path / "inv.nc")
    back = load_inverse(path)
    assert back.ch_names == inv.ch_names and back.rank == inv.rank
    assert back.orientation == inv.orientation and back.depth == inv.depth
    for method in ("dSPM", "eLORETA"):
        a = prepare_inverse(inv, 2, LAMBDA2, method)
        b = prepare_inverse(back, 2, LAMBDA2, method)
        np.testing.assert_allclose(b.kernel, a.kernel, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("loose", "method"), [(0.2, "dSPM"), (0.2, "eLORETA"), (0.0, "eLORETA")])
def test_operator_same_for_any_worker_count(cases, monkeypatch, loose, method):
    """Operator construction and eLORETA split sources over workers; any split
    gives the same numbers (to the summation order of the per-block Grams)."""
    import exgsrc.linalg as linalg_module

    case = cases["biosemi64-ico3"]
    fixed = loose == 0.0

    def build():
        inv = make_inverse_operator(case["ours_fwd"], case["ours_cov"], loose=loose, fixed=fixed)
        return inv, prepare_inverse(inv, NAVE, LAMBDA2, method)

    ref_inv, ref = build()
    monkeypatch.setattr(linalg_module, "PARALLEL_MIN_VALUES", 0)
    for n_workers in (2, 3, 5):
        monkeypatch.setattr(linalg_module, "thread_budget", lambda n=n_workers: n)
        inv, prep = build()
        np.testing.assert_allclose(inv.gain_white, ref_inv.gain_white, rtol=1e-13)
        np.testing.assert_allclose(inv.sing, ref_inv.sing, rtol=1e-11, atol=1e-11 * inv.sing[0])
        scale = np.abs(ref.kernel).max()
        np.testing.assert_allclose(prep.kernel, ref.kernel, rtol=0, atol=1e-11 * scale)
        if method == "eLORETA":
            assert prep.eloreta_info["n_iter"] == ref.eloreta_info["n_iter"]


@pytest.mark.parametrize("loose", [0.2, 1.0, 0.0])
def test_gram_factors_against_lapack_svd(cases, loose):
    """The operator's SVD comes from the Gram matrix; its kernels and noise
    normalisation equal those of a LAPACK SVD of the same whitened, weighted gain."""
    from exgsrc.linalg import regularized_inverse_singular_values, svd_economy

    case = cases["biosemi64-ico3"]
    inv = make_inverse_operator(
        case["ours_fwd"], case["ours_cov"], loose=loose, fixed=loose == 0.0
    )
    weighted = inv.gain_white * np.sqrt(inv.source_cov)
    u, s, vt = svd_economy(weighted)
    # U is orthogonal and U S V^T reproduces the weighted gain
    np.testing.assert_allclose(inv.eigen_fields @ inv.eigen_fields.T, np.eye(inv.n_channels),
                               atol=1e-13)  # fmt: skip
    rebuilt = (inv.eigen_fields.T * inv.sing) @ inv.eigen_leads.T
    np.testing.assert_allclose(rebuilt, weighted, rtol=0, atol=1e-12 * np.abs(weighted).max())
    np.testing.assert_allclose(inv.sing, s, rtol=0, atol=1e-10 * s[0])
    white_proj = inv.whitener @ inv.proj
    for method in ("MNE", "dSPM", "sLORETA"):
        reginv = regularized_inverse_singular_values(s, inv.rank, LAMBDA2)
        k = (vt.T * reginv) @ (u.T @ white_proj) * np.sqrt(inv.source_cov)[:, None]
        if method != "MNE":
            w = reginv if method == "dSPM" else reginv * np.sqrt(1 + s**2 / LAMBDA2)
            nn2 = inv.source_cov * np.sum((vt.T * w) ** 2, axis=1)
            if inv.n_orient == 3:
                nn2 = np.repeat(nn2.reshape(-1, 3).sum(axis=1), 3)
            k /= np.sqrt(nn2)[:, None]
        ours = prepare_inverse(inv, 1, LAMBDA2, method, pick_ori="vector" if loose else None)
        if loose == 0.2:  # "vector" reports x, y, z: rotate the reference the same way
            k = np.einsum("vak,vac->vkc", inv.basis, k.reshape(-1, 3, k.shape[1]))
            k = k.reshape(-1, k.shape[-1])
        assert _rel_err(ours.kernel, k) <= 1e-12
