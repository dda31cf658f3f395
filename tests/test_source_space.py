"""Tests for exgsrc.source_space."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.source_space import (
    SourceSpace,
    discrete_source_space,
    grid_source_space,
    ico_n_vertices,
    ico_source_space,
)


@pytest.mark.parametrize("grade, n", [(0, 12), (1, 42), (2, 162), (3, 642), (4, 2562)])
def test_ico_counts(grade, n):
    assert ico_n_vertices(grade) == n
    src = ico_source_space(grade, 0.07)
    assert src.n_sources == n
    assert src.tris.shape == (20 * 4**grade, 3)
    # closed surface: every vertex used, Euler characteristic V - E + F == 2
    assert np.unique(src.tris).size == n
    edges = np.sort(
        np.concatenate([src.tris[:, [0, 1]], src.tris[:, [1, 2]], src.tris[:, [2, 0]]]), axis=1
    )
    n_edges = np.unique(edges, axis=0).shape[0]
    assert n - n_edges + len(src.tris) == 2
    # every edge shared by exactly two triangles, no duplicate vertices
    assert edges.shape[0] == 2 * n_edges
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(src.pos).query(src.pos, k=2)
    assert dist[:, 1].min() > 1e-6


def test_ico_geometry():
    center = np.array([0.001, -0.002, 0.04])
    src = ico_source_space(3, 0.07, center)
    rel = src.pos - center
    np.testing.assert_allclose(np.linalg.norm(rel, axis=1), 0.07, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(src.nn, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(src.nn, rel / 0.07, atol=1e-12)
    # outward orientation: triangle normals point away from the centre
    p = src.pos[src.tris] - center
    tri_n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert np.all(np.einsum("ij,ij->i", tri_n, p.mean(axis=1)) > 0)
    # total area approaches the sphere's
    area = 0.5 * np.linalg.norm(tri_n, axis=1).sum()
    assert area == pytest.approx(4 * np.pi * 0.07**2, rel=0.01)


def test_ico_grade6_vectorised():
    src = ico_source_space(6, 0.08)
    assert src.n_sources == 40962


def test_grid():
    src = grid_source_space(0.01, 0.05, center=(0, 0, 0.04), exclude=0.015)
    d = np.linalg.norm(src.pos - [0, 0, 0.04], axis=1)
    assert d.max() <= 0.05 + 1e-12 and d.min() >= 0.015
    assert src.kind == "volume"
    np.testing.assert_array_equal(src.nn, np.tile([0, 0, 1.0], (src.n_sources, 1)))
    # 8 grid points on each axis ray at radius <= 5 cm minus those inside 1.5 cm:
    # count by brute force on integer lattice
    k = np.arange(-5, 6)
    g = np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3)
    r2 = (g**2).sum(1)
    assert src.n_sources == int(((r2 <= 25) & (r2 >= 2.25)).sum())


def test_discrete_and_roundtrip():
    rng = np.random.default_rng(1)
    pos = rng.normal(size=(10, 3)) * 0.01
    nn = rng.normal(size=(10, 3))
    src = discrete_source_space(pos, nn)
    np.testing.assert_allclose(np.linalg.norm(src.nn, axis=1), 1)
    for s in (src, ico_source_space(1, 0.05)):
        ds = s.to_xarray()
        assert ds["pos"].dims == ("source", "xyz")
        assert ds["pos"].attrs["units"] == "m"
        np.testing.assert_array_equal(ds["x"].values, s.pos[:, 0])
        back = SourceSpace.from_xarray(ds)
        np.testing.assert_array_equal(back.pos, s.pos)
        np.testing.assert_array_equal(back.nn, s.nn)
        assert back.kind == s.kind
        if s.tris is not None:
            np.testing.assert_array_equal(back.tris, s.tris)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ico_source_space(7, 0.07), "grade"),
        (lambda: ico_source_space(2, -1.0), "radius"),
        (lambda: ico_source_space(2, 0.07, center=(0, 0)), "center"),
        (lambda: grid_source_space(0.0, 0.05), "spacing"),
        (lambda: grid_source_space(0.01, 0.05, exclude=0.06), "exclude"),
        (lambda: discrete_source_space(np.zeros((0, 3))), "zero sources"),
        (lambda: discrete_source_space([[0, 0, np.nan]]), "source 0"),
        (lambda: discrete_source_space([[0, 0, 0]], [[0, 0, 0]]), "nn of source 0"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sourcespace_validates():
    with pytest.raises(ValueError, match="pos"):
        SourceSpace(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="nn"):
        SourceSpace(np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="kind"):
        SourceSpace(np.zeros((3, 3)), np.zeros((3, 3)), kind="cortex")


@pytest.mark.parity
@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_ico_matches_mne(grade):
    """Same vertex set and triangulation as MNE's icosahedra (up to vertex order)."""
    surface = importlib.import_module("mne.surface")
    from scipy.spatial import cKDTree

    ref = surface._get_ico_surface(grade)
    ours = ico_source_space(grade, 1.0)
    dist, idx = cKDTree(ours.pos).query(ref["rr"])
    assert dist.max() < 1e-4  # MNE's stored icosahedra are rounded to ~5 decimals
    assert np.unique(idx).size == ours.n_sources
    ref_tris = {tuple(t) for t in np.sort(idx[ref["tris"]], axis=1)}
    our_tris = {tuple(t) for t in np.sort(ours.tris, axis=1)}
    assert ref_tris == our_tris
