"""eLORETA weight solver: options, convergence reporting, parity with MNE-Python."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.eloreta import EloretaOptions, solve_eloreta_weights
from exgsrc.inverse import apply_inverse, make_inverse_operator, prepare_inverse

mne = importlib.import_module("mne")

from test_inverse import _build_case  # noqa: E402  (shared MNE fixture builder)

LAMBDA2 = 1.0 / 9.0


@pytest.fixture(scope="module", autouse=True)
def _single_thread_blas(single_thread_blas):
    """Small matrices: BLAS threads only add contention on shared CI cores."""


@pytest.fixture(scope="module")
def case():
    return _build_case("biosemi32", 2, 7, rank_deficient=True)


def _mne_eloreta(case, minv, pick_ori, params):
    with mne.utils.catch_logging() as log:
        stc = mne.minimum_norm.apply_inverse(
            case["evoked"],
            minv,
            LAMBDA2,
            "eLORETA",
            pick_ori=pick_ori,
            method_params=params,
            verbose="debug",
        )
    return stc, log.getvalue()


def _rel_err(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parity
@pytest.mark.parametrize("force_equal", [True, False])
@pytest.mark.parametrize(
    ("loose", "pick_ori"), [(0.2, None), (0.2, "vector"), (1.0, None), (0.0, None)]
)
def test_eloreta_force_equal_parity(case, loose, pick_ori, force_equal):
    fixed = loose == 0.0
    minv = mne.minimum_norm.make_inverse_operator(
        case["info"],
        case["fwd_surf"],
        case["cov_mne"],
        loose=loose,
        depth=0.8,
        fixed=True if fixed else "auto",
    )
    inv = make_inverse_operator(case["ours_fwd"], case["ours_cov"], loose=loose, fixed=fixed)
    params = dict(force_equal=force_equal, max_iter=30, eps=1e-7)
    stc, log = _mne_eloreta(case, minv, pick_ori, params)
    prep = prepare_inverse(inv, 3, LAMBDA2, "eLORETA", pick_ori, EloretaOptions(**params))
    assert _rel_err(prep.apply(case["data"]), stc.data) <= 1e-4
    info = prep.eloreta_info
    # MNE logs "Converged on iteration k" with a 0-based k
    assert info["converged"] and info["delta"] < 1e-7
    assert f"Converged on iteration {info['n_iter'] - 1} " in log


@pytest.mark.parity
def test_eloreta_not_converged_reports(case):
    minv = mne.minimum_norm.make_inverse_operator(
        case["info"], case["fwd_surf"], case["cov_mne"], loose=1.0, depth=None
    )
    inv = make_inverse_operator(case["ours_fwd"], case["ours_cov"], loose=1.0, depth=None)
    params = dict(max_iter=2, eps=1e-12)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        stc, _ = _mne_eloreta(case, minv, None, params)
    prep = prepare_inverse(inv, 3, LAMBDA2, "eLORETA", None, params)
    assert prep.eloreta_info["n_iter"] == 2 and not prep.eloreta_info["converged"]
    assert prep.eloreta_info["delta"] > 1e-12
    assert _rel_err(prep.apply(case["data"]), stc.data) <= 1e-6
    # default options (force_equal None == False, as MNE's code)
    est = apply_inverse(case["data"], inv, LAMBDA2, "eLORETA", nave=3)
    ref, _ = _mne_eloreta(case, minv, None, None)
    assert _rel_err(est.data, ref.data) <= 1e-4


def test_solver_weights_fixed_properties(case):
    inv = make_inverse_operator(case["ours_fwd"], case["ours_cov"], fixed=True)
    res = solve_eloreta_weights(
        inv.gain_white, 1, LAMBDA2, inv.rank, None, dict(eps=1e-10, max_iter=200)
    )
    assert res.converged and res.weights.shape == (inv.n_sources,)
    # fixed point: R_k = (g_k^T N g_k)^(-1/2) up to the trace normalisation
    g, r = inv.gain_white, res.weights
    grg = (g * r) @ g.T
    s, u = np.linalg.eigh(grg)
    s, u = s[::-1][: inv.rank], u[:, ::-1][:, : inv.rank]
    n_mat = (u / (s + LAMBDA2)) @ u.T
    target = 1.0 / np.sqrt(np.sum((n_mat @ g) * g, axis=0))
    np.testing.assert_allclose(r / r.sum(), target / target.sum(), rtol=1e-6)


def test_options_validation():
    assert EloretaOptions() == EloretaOptions(max_iter=20, eps=1e-6, force_equal=None)
    assert EloretaOptions.coerce({"eps": 1e-3}).eps == 1e-3
    with pytest.raises(ValueError, match="max_iter"):
        EloretaOptions(max_iter=0)
    with pytest.raises(ValueError, match="eps"):
        EloretaOptions(eps=-1.0)
    with pytest.raises(ValueError, match="force_equal"):
        EloretaOptions(force_equal="yes")
    with pytest.raises(ValueError, match="unknown eLORETA option"):
        EloretaOptions.coerce({"tol": 1})


def _reference_weights(g, n_orient, lambda2, rank, orient_prior, max_iter, eps, force_equal):
    """MNE-Python's ``_compute_eloreta`` weight loop, transcribed literally
    (full n_ch x n_ch eigh, np.linalg.eigh for the 3x3 blocks)."""

    def sqrtm_sym(a, inv):
        s, u = np.linalg.eigh(a)
        limit = s[..., -1:] * 1e-7
        s = s.copy()
        s[s <= limit] = np.inf if inv else 0.0
        s = np.sqrt(s)
        use = 1.0 / s if inv else s
        return np.matmul(u * use[..., None, :], np.swapaxes(u, -1, -2)), s

    g = g.copy()
    n_src = g.shape[1] // n_orient
    std = np.ones(g.shape[1]) if orient_prior is None else np.sqrt(orient_prior)
    g *= std
    g3 = g.reshape(g.shape[0], n_src, n_orient).transpose(1, 2, 0) if n_orient == 3 else None
    blocks = n_orient == 3 and not force_equal
    if blocks:
        r_prior = std.reshape(n_src, 1, 3) * std.reshape(n_src, 3, 1)
        r = np.tile(np.eye(3), (n_src, 1, 1)) * r_prior
    else:
        r_prior = std**2
        r = np.ones(g.shape[1]) * r_prior

    def normalize(g, r, g3):
        r_gt = np.matmul(r, g3).reshape(-1, g.shape[0]) if blocks else r[:, None] * g.T
        grg = g @ r_gt
        norm = np.trace(grg) / rank
        r /= norm
        return grg / norm

    grg = normalize(g, r, g3)
    for _ in range(max_iter):
        s, u = np.linalg.eigh(grg)
        s = np.abs(s)
        idx = np.argsort(s)[::-1][:rank]
        s, u = s[idx], u[:, idx]
        with np.errstate(divide="ignore"):
            s = np.where(s > 0, 1 / (s + lambda2), 0)
        n_mat = (u * s) @ u.T
        r_last = r.copy()
        if n_orient == 1:
            r[:] = 1.0 / np.sqrt(np.sum((n_mat @ g) * g, axis=0))
        else:
            m = np.matmul(np.matmul(g3, n_mat[None]), g3.swapaxes(-2, -1))
            if force_equal:
                _, s = sqrtm_sym(m, inv=True)
                r[:] = np.repeat(1.0 / np.mean(s, axis=-1), 3)
            else:
                r[:], _ = sqrtm_sym(m, inv=True)
        r *= r_prior
        grg = normalize(g, r, g3)
        if np.linalg.norm(r.ravel() - r_last.ravel()) / np.linalg.norm(r_last.ravel()) < eps:
            break
    g /= std
    g3 = g.reshape(g.shape[0], n_src, n_orient).transpose(1, 2, 0) if n_orient == 3 else None
    normalize(g, r, g3)
    return r


@pytest.mark.parametrize(
    ("loose", "force_equal"), [(0.2, False), (0.2, True), (1.0, False), (0.0, False)]
)
@pytest.mark.parametrize("rank_drop", [0, 4])
def test_weights_match_reference_loop(case, loose, force_equal, rank_drop):
    """The factored solver (SYRK + Cholesky/TRSM, or eigh when the rank is below the
    whitened space) gives MNE's weights; rank_drop > 0 keeps fewer eigenvalues
    of G R G^T than the whitened space has, as a caller-given rank does."""
    inv = make_inverse_operator(case["ours_fwd"], case["ours_cov"], loose=loose, fixed=loose == 0)
    rank = inv.rank - rank_drop
    opts = dict(max_iter=8, eps=1e-9, force_equal=force_equal)
    res = solve_eloreta_weights(
        inv.gain_white, inv.n_orient, LAMBDA2, rank, inv.orient_prior, opts
    )
    ref = _reference_weights(
        inv.gain_white, inv.n_orient, LAMBDA2, rank, inv.orient_prior, 8, 1e-9, force_equal
    )
    assert res.weights.shape == ref.shape
    np.testing.assert_allclose(res.weights, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
