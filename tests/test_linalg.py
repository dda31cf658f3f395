"""Whitening, rank and covariance checks against MNE-Python."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.linalg import (
    average_reference_projector,
    check_covariance,
    compute_rank,
    compute_whitener,
    normal_tangent_basis,
)

mne = importlib.import_module("mne")


@pytest.fixture(scope="module")
def setup():
    mne.set_log_level("error")
    pos = mne.channels.make_standard_montage("biosemi32").get_positions()["ch_pos"]
    names = list(pos)
    info = mne.create_info(names, 250.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(pos, coord_frame="head"))
    ev = mne.EvokedArray(np.zeros((len(names), 2)), info)
    ev.set_eeg_reference(projection=True)
    rng = np.random.default_rng(3)
    n = len(names)
    x = rng.standard_normal((n, n)) @ rng.standard_normal((n, 2000)) * 1e-6
    covs = {"full": x @ x.T / 2000}
    xr = x - x.mean(0)
    covs["avgref"] = xr @ xr.T / 2000
    xi = x.copy()  # two "interpolated" channels: linear combinations of others
    xi[5] = xi[[4, 6, 7]].mean(0)
    xi[20] = xi[[19, 21]].mean(0)
    xi -= xi.mean(0)
    covs["interp"] = xi @ xi.T / 2000
    return dict(info=ev.info, names=names, covs=covs)


@pytest.mark.parity
@pytest.mark.parametrize(("kind", "expected"), [("full", 31), ("avgref", 31), ("interp", 29)])
def test_rank_matches_mne(setup, kind, expected):
    c = setup["covs"][kind]
    cov = mne.Covariance(c, setup["names"], [], [], 1999)
    ref = mne.compute_rank(cov, info=setup["info"])["eeg"]
    assert ref == expected
    assert compute_rank(c) == ref


@pytest.mark.parity
@pytest.mark.parametrize("kind", ["full", "avgref", "interp"])
def test_whitener_matches_mne(setup, kind):
    c = setup["covs"][kind]
    cov = mne.Covariance(c, setup["names"], [], [], 1999)
    w_mne, _, rank_mne = mne.cov.compute_whitener(
        cov, setup["info"], pca="white", return_rank=True
    )
    w, rank = compute_whitener(c)
    assert rank == rank_mne
    # eigenvector signs are arbitrary: compare the sign-free W^T W (pseudo-inverse)
    a, b = w.T @ w, w_mne.T @ w_mne
    assert np.max(np.abs(a - b)) <= 1e-8 * np.max(np.abs(b))
    # whitened projected covariance is the identity on the kept subspace
    p = average_reference_projector(len(c))
    white = w @ p @ c @ p @ w.T
    expect = np.zeros(len(c))
    expect[-rank:] = 1.0
    np.testing.assert_allclose(white, np.diag(expect), atol=1e-8)
    # explicit rank: fewer kept directions
    w2, r2 = compute_whitener(c, rank=rank - 3)
    assert r2 == rank - 3 and np.sum(np.any(w2 != 0, axis=1)) == rank - 3


@pytest.mark.parity
def test_average_reference_projector_matches_mne(setup):
    from mne._fiff.proj import make_projector

    proj, ncomp, _ = make_projector(setup["info"]["projs"], setup["names"])
    assert ncomp == 1
    np.testing.assert_allclose(average_reference_projector(len(setup["names"])), proj, atol=1e-14)


def test_check_covariance_errors(setup):
    c = setup["covs"]["full"]
    with pytest.raises(ValueError, match="square"):
        check_covariance(c[:3])
    bad = c.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_covariance(bad)
    bad = c.copy()
    bad[0, 2] *= 2
    with pytest.raises(ValueError, match="not symmetric"):
        check_covariance(bad)
    with pytest.raises(ValueError, match="positive semi-definite"):
        check_covariance(-c)
    with pytest.raises(ValueError, match="rank must be"):
        compute_rank(c, rank=32)  # > n - 1 with an average reference
    with pytest.raises(ValueError, match="rank must be"):
        compute_rank(c, rank=0)


def test_normal_tangent_basis():
    rng = np.random.default_rng(0)
    nn = rng.standard_normal((50, 3))
    nn[0] = [0, 0, 1]
    nn[1] = [1, 0, 0]
    b = normal_tangent_basis(nn)
    np.testing.assert_allclose(
        np.matmul(b, b.transpose(0, 2, 1)), np.tile(np.eye(3), (50, 1, 1)), atol=1e-12
    )
    np.testing.assert_allclose(b[:, 2], nn / np.linalg.norm(nn, axis=1)[:, None], atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(b), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="zero or not finite"):
        normal_tangent_basis(np.zeros((2, 3)))
