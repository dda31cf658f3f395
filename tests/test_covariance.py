"""Tests for exgsrc.covariance (oracle: MNE-Python)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from exgsrc.covariance import (
    NoiseCov,
    average_reference_projector,
    compute_covariance,
    compute_covariance_epochs,
    kfold_indices,
)

RTOL = 1e-6


def _relerr(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def _sim_epochs(n_ch=24, n_epochs=30, n_times=50, seed=0, n_src=6):
    """Correlated noise: a few smooth spatial patterns + AR(1) time courses + sensor noise."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, n_ch, endpoint=False)
    pats = np.stack([np.cos((k + 1) * theta + rng.uniform(0, 6)) for k in range(n_src)], 1)
    z = rng.standard_normal((n_epochs, n_src, n_times))
    for t in range(1, n_times):  # AR(1) -> temporally correlated samples
        z[:, :, t] += 0.8 * z[:, :, t - 1]
    data = np.einsum("cs,est->ect", pats, z) + 0.5 * rng.standard_normal((n_epochs, n_ch, n_times))
    data *= 5e-6  # volts
    data -= data.mean(axis=-1, keepdims=True)  # baseline-corrected
    names = [f"EEG{i:03d}" for i in range(n_ch)]
    return data, names


@pytest.fixture(scope="module")
def sim():
    return _sim_epochs()


@pytest.fixture(scope="module")
def mne_epochs(sim):
    mne = pytest.importorskip("mne")
    data, names = sim
    info = mne.create_info(names, 250.0, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epo = mne.EpochsArray(data, info, baseline=None, verbose="error")
        epo.set_eeg_reference(projection=True, verbose="error")
        epo.apply_proj(verbose="error")
    return epo


def _mne_cov(epo, **kw):
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mne.compute_covariance(epo, verbose="error", **kw)


# --------------------------------------------------------------------------- basics


def test_average_reference_projector_matches_mne():
    mne = pytest.importorskip("mne")
    n = 7
    info = mne.create_info([f"E{i}" for i in range(n)], 100.0, "eeg")
    raw = mne.io.RawArray(np.zeros((n, 10)), info, verbose="error")
    raw.set_eeg_reference(projection=True, verbose="error")
    from mne._fiff.proj import make_projector

    P_mne, ncomp, _ = make_projector(raw.info["projs"], raw.ch_names)
    P = average_reference_projector(n)
    assert ncomp == 1
    np.testing.assert_allclose(P, P_mne, atol=1e-12)
    np.testing.assert_allclose(P @ P, P, atol=1e-12)
    with pytest.raises(ValueError, match="n_ch"):
        average_reference_projector(1)


def test_kfold_matches_sklearn():
    sk = pytest.importorskip("sklearn.model_selection")
    for n, k in [(10, 3), (11, 3), (100, 4), (5, 5)]:
        ours = kfold_indices(n, k)
        ref = list(sk.KFold(k).split(np.zeros(n)))
        assert len(ours) == len(ref)
        for (a, b), (c, d) in zip(ours, ref, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_noisecov_validation_and_pick():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    C = A @ A.T
    names = ("a", "b", "c", "d")
    cov = NoiseCov(C, names, nfree=10, method="empirical")
    sub = cov.pick_channels(["c", "a"])
    np.testing.assert_array_equal(sub.data, C[np.ix_([2, 0], [2, 0])])
    assert sub.ch_names == ("c", "a")
    with pytest.raises(ValueError, match="'x'"):
        cov.pick_channels(["a", "x"])
    with pytest.raises(ValueError, match="symmetric"):
        NoiseCov(C + np.triu(np.ones((4, 4)), 1), names, 1)
    with pytest.raises(ValueError, match="positive semi-definite"):
        NoiseCov(C - 2 * np.abs(C).max() * np.eye(4), names, 1)
    Cn = C.copy()
    Cn[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NoiseCov(Cn, names, 1)
    with pytest.raises(ValueError, match="3 channel names"):
        NoiseCov(C, names[:3], 1)
    with pytest.raises(ValueError, match="duplicate"):
        NoiseCov(C, ("a", "a", "c", "d"), 1)


def test_noisecov_xarray_roundtrip(sim):
    data, names = sim
    cov = compute_covariance_epochs(data, names, method="shrunk")
    ds = cov.to_xarray()
    assert ds["cov"].dims == ("channel", "channel2")
    assert ds["cov"].attrs["units"] == "V^2"
    back = NoiseCov.from_xarray(ds)
    np.testing.assert_array_equal(back.data, cov.data)
    assert back.ch_names == cov.ch_names
    assert (back.nfree, back.method, back.rank) == (cov.nfree, cov.method, cov.rank)
    assert back.meta["shrinkage"] == cov.meta["shrinkage"]


def test_bad_input(sim):
    data, names = sim
    with pytest.raises(ValueError, match="ch_names"):
        compute_covariance_epochs(data, names[:-1])
    bad = data.copy()
    bad[3, 5, 7] = np.inf
    with pytest.raises(ValueError, match=names[5]):
        compute_covariance_epochs(bad, names)
    with pytest.raises(ValueError, match="unknown covariance method 'foo'"):
        compute_covariance_epochs(data, names, method="foo")
    with pytest.raises(ValueError, match="shape"):
        compute_covariance(data, names)
    with pytest.raises(ValueError, match="keep_sample_mean"):
        compute_covariance_epochs(data, names, method="shrunk", keep_sample_mean=False)
    with pytest.raises(ValueError, match="shrinkage"):
        compute_covariance_epochs(data, names, method="shrinkage", shrinkage=1.5)


def test_null_space_empty(sim):
    """Every estimator keeps the average-reference direction empty."""
    data, names = sim
    ones = np.ones(len(names)) / np.sqrt(len(names))
    for m in ("empirical", "shrunk", "ledoit_wolf", "oas", "diagonal_fixed", "shrinkage"):
        cov = compute_covariance_epochs(data, names, method=m)
        assert cov.rank == len(names) - 1
        w = np.linalg.eigvalsh(cov.data)
        assert np.abs(cov.data @ ones).max() < 1e-12 * w[-1], m
        assert w[1] > 1e-3 * w[-1], m  # the rest stays well conditioned


def test_reference_invariance(sim):
    """Unreferenced data and average-referenced data give the same covariance."""
    data, names = sim
    ref = data - data.mean(axis=1, keepdims=True)
    off = data + 3e-5 * np.random.default_rng(2).standard_normal((1, 1, data.shape[2]))
    for m in ("empirical", "ledoit_wolf"):
        a = compute_covariance_epochs(ref, names, method=m).data
        b = compute_covariance_epochs(off, names, method=m).data
        assert _relerr(b, a) < 1e-9


# --------------------------------------------------------------------------- parity


@pytest.mark.parity
def test_empirical_parity(sim, mne_epochs):
    data, names = sim
    ref = _mne_cov(mne_epochs, method="empirical")
    ours = compute_covariance_epochs(data, names, method="empirical")
    assert ours.ch_names == tuple(ref.ch_names)
    assert ours.nfree == ref["nfree"]
    assert _relerr(ours.data, ref.data) < RTOL


@pytest.mark.parity
def test_empirical_no_sample_mean_parity(sim, mne_epochs):
    data, names = sim
    ref = _mne_cov(mne_epochs, method="empirical", keep_sample_mean=False)
    ours = compute_covariance_epochs(data, names, method="empirical", keep_sample_mean=False)
    assert _relerr(ours.data, ref.data) < RTOL


@pytest.mark.parity
def test_continuous_empirical_parity(sim):
    mne = pytest.importorskip("mne")
    data, names = sim
    cont = np.concatenate(list(data), axis=1) + 2e-6  # non-zero channel means
    cont -= cont.mean(axis=0, keepdims=True)  # referenced like MNE's projected raw
    raw = mne.io.RawArray(cont, mne.create_info(names, 250.0, "eeg"), verbose="error")
    raw.set_eeg_reference(projection=True, verbose="error")
    raw.apply_proj(verbose="error")
    ref = mne.compute_raw_covariance(raw, tstep=None, verbose="error")
    ours = compute_covariance(cont, names)
    assert _relerr(ours.data, ref.data) < RTOL
    assert ours.nfree == ref["nfree"]
