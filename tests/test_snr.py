"""SNR estimation against mne.minimum_norm.estimate_snr."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.inverse import make_inverse_operator
from exgsrc.snr import estimate_snr

mne = importlib.import_module("mne")

from test_inverse import _build_case  # noqa: E402  (shared MNE fixture builder)


@pytest.fixture(scope="module", autouse=True)
def _single_thread_blas(single_thread_blas):
    """Small matrices: BLAS threads only add contention on shared CI cores."""


@pytest.fixture(scope="module")
def case():
    c = _build_case("biosemi32", 2, 11, rank_deficient=False)
    # evoked with a real signal: a few dipoles rising over time, plus noise
    rng = np.random.default_rng(12)
    g = c["ours_fwd"].gain
    n_t = 60
    amp = np.zeros((g.shape[1], n_t))
    amp[[30, 151, 400]] = np.linspace(0, 1, n_t) * 40e-9
    noise = np.linalg.cholesky(c["ours_cov"].data + 1e-18 * np.eye(g.shape[0]))
    perm = [c["ours_cov"].ch_names.index(n) for n in c["names"]]
    noise = noise[perm] / np.sqrt(3)
    c["signal"] = g @ amp + noise @ rng.standard_normal((g.shape[0], n_t))
    return c


@pytest.mark.parity
@pytest.mark.parametrize(
    ("loose", "depth", "nave"), [(0.2, 0.8, 3), (1.0, None, 1), (0.0, 0.8, 3)]
)
def test_estimate_snr_parity(case, loose, depth, nave):
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
    evoked = mne.EvokedArray(case["signal"], case["info"], nave=nave)
    snr_ref, est_ref = mne.minimum_norm.estimate_snr(evoked, minv)
    snr, est = estimate_snr(case["signal"], inv, nave=nave)
    assert snr.shape == est.shape == (case["signal"].shape[1],)
    np.testing.assert_allclose(snr, snr_ref, rtol=1e-6)
    np.testing.assert_allclose(est, est_ref, rtol=1e-6)
    assert np.any(est > 0) and np.any(est == 0)  # both regimes exercised
    # reference-free, and channel order handled by name
    perm = np.random.default_rng(0).permutation(len(case["names"]))
    snr2, est2 = estimate_snr(
        (case["signal"] - case["signal"].mean(0))[perm],
        inv,
        nave=nave,
        ch_names=[case["names"][i] for i in perm],
    )
    np.testing.assert_allclose(snr2, snr, rtol=1e-10)
    np.testing.assert_allclose(est2, est, rtol=1e-10)


def test_estimate_snr_bad_input(case):
    inv = make_inverse_operator(case["ours_fwd"], case["ours_cov"])
    bad = case["signal"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        estimate_snr(bad, inv)
    with pytest.raises(ValueError, match="nave"):
        estimate_snr(case["signal"], inv, nave=0)
