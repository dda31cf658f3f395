"""Tests for exgsrc.forward (MNE-Python is the oracle in parity tests)."""

from __future__ import annotations

import numpy as np

from exgsrc.forward import (
    Forward,
    SphereModel,
    make_sphere_forward,
    make_sphere_forward_free,
    sphere_potential_berg_scherg,
    sphere_potential_exact,
)
from exgsrc.source_space import ico_source_space


def test_homogeneous_exact_equals_closed_form():
    # single-material sphere: the series and the closed form are both exact
    hom = SphereModel(radii=(0.07, 0.08, 0.09), conductivities=(0.33, 0.33, 0.33))
    el = ico_source_space(2, 0.09).pos
    rng = np.random.default_rng(0)
    src = rng.uniform(-0.035, 0.035, size=(30, 3))
    ge = sphere_potential_exact(el, src, hom)
    gb = sphere_potential_berg_scherg(el, src, hom)
    np.testing.assert_allclose(gb, ge, rtol=1e-9, atol=1e-12 * np.abs(ge).max())


def test_free_fixed_consistent():
    sph = SphereModel.mne_default()
    el = ico_source_space(2, 0.09, (0, 0, 0.04)).pos
    src = ico_source_space(2, 0.06, (0, 0, 0.04))
    free = make_sphere_forward_free(el, src, sph)
    fixed = make_sphere_forward(el, src, sph)
    assert free.gain.shape == (162, 3 * 162)
    assert fixed.gain.shape == (162, 162)
    G = free.gain.reshape(162, 162, 3)
    np.testing.assert_allclose(fixed.gain, np.einsum("csj,sj->cs", G, src.nn), rtol=1e-12)
    assert isinstance(free, Forward)
