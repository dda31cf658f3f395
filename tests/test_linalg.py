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


def test_sym3_eigh_matches_lapack():
    from exgsrc.linalg import sym3_eigh

    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 3, 20))
    m = x @ x.transpose(0, 2, 1)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    m[0] = np.diag([1.0, 1.0, 2.0])  # degenerate pairs, zeros, huge ranges, indefinite
    m[1] = q @ np.diag([1.0, 1.0 + 1e-13, 5.0]) @ q.T
    m[2] = 0.0
    m[3] = np.diag([1e200, 1e-100, 1.0])
    m[4] = q @ np.diag([-3.0, 1e-12, 2.0]) @ q.T
    w, v = sym3_eigh(m)
    w0 = np.linalg.eigvalsh(m)
    scale = np.abs(w0).max(axis=-1, keepdims=True).clip(1e-300)
    assert np.max(np.abs(w - w0) / scale) < 1e-14
    np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, np.broadcast_to(np.eye(3), m.shape),
                               atol=1e-14)  # fmt: skip
    rebuilt = (v * w[:, None, :]) @ np.swapaxes(v, -1, -2)
    assert np.max(np.abs(rebuilt - m) / scale[:, :, None]) < 1e-14
    np.testing.assert_array_equal(sym3_eigh(m, vectors=False), w)
    assert sym3_eigh(m.reshape(5, 100, 3, 3), vectors=False).shape == (5, 100, 3)


def test_svd_gram_on_an_ill_conditioned_matrix():
    """Condition number 1e9 (that of a whitened 256-channel gain): the Gram route
    loses the small singular values' relative accuracy, but the factors still
    reproduce the matrix and the regularised products equal LAPACK's."""
    from exgsrc.linalg import WorkerPool, svd_gram

    rng = np.random.default_rng(5)
    m, n = 40, 3000
    u0, _ = np.linalg.qr(rng.standard_normal((m, m)))
    v0, _ = np.linalg.qr(rng.standard_normal((n, m)))
    s0 = np.logspace(0, -9, m)
    a = (u0 * s0) @ v0.T
    scale = rng.uniform(0.5, 2.0, n)
    at = np.ascontiguousarray((a / scale).T)  # the row scaling is undone inside
    for n_workers in (1, 3):
        with WorkerPool(at.size, n_workers) as pool:
            u, s, v = svd_gram(at, row_scale=scale, pool=pool)
        np.testing.assert_allclose(u.T @ u, np.eye(m), atol=1e-14)
        np.testing.assert_allclose((u * s) @ v.T, a, rtol=0, atol=1e-14)
        assert np.all(np.diff(s) <= 0)
        np.testing.assert_allclose(s, s0, rtol=0, atol=1e-7)  # eps * s_max**2 / s_i
        np.testing.assert_allclose(s[:10], s0[:10], rtol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, rtol=1e-14)
        for lam in (1.0 / 9.0, 1e-4):
            k = (v * (s / (s**2 + lam))) @ u.T
            k0 = (v0 * (s0 / (s0**2 + lam))) @ u0.T
            assert np.max(np.abs(k - k0)) / np.max(np.abs(k0)) < 1e-11
    with pytest.raises(ValueError, match="tall"):
        svd_gram(a)
