"""exgsrc.scalp: sphere fit without the face, radial projection onto the scalp."""

from __future__ import annotations

import numpy as np
import pytest

from exgsrc.forward import SphereModel
from exgsrc.scalp import SphereFit, fit_scalp_sphere, project_to_sphere


def _on_sphere(rng, n, radius, center, z_min):
    """n points on a sphere, all above the plane z = z_min."""
    out = []
    while len(out) < n:
        v = rng.normal(size=3)
        p = np.asarray(center) + radius * v / np.linalg.norm(v)
        if p[2] > z_min:
            out.append(p)
    return np.array(out)


def test_fit_scalp_sphere_leaves_out_face_and_records_it():
    rng = np.random.default_rng(11)
    c, R = np.array([0.001, 0.004, 0.035]), 0.092
    scalp = _on_sphere(rng, 60, R, c, 0.001)  # cranium: above the fiducial plane
    face = np.array([[0.03, 0.08, -0.03], [-0.03, 0.08, -0.03], [0.0, 0.09, -0.06]])
    neck = np.array([[0.03, -0.06, -0.05], [-0.03, -0.06, -0.05], [0.0, -0.07, -0.04]])
    pos = np.vstack([scalp, face, neck])  # face and neck 10-30 mm inside the sphere
    names = [f"S{k}" for k in range(60)] + ["F1", "F2", "F3", "N1", "N2", "N3"]
    # "below" (face and neck left out) recovers the cranium sphere exactly
    below = fit_scalp_sphere(pos, names, exclude="below")
    np.testing.assert_allclose(below.center, c, atol=1e-12)
    assert below.radius == pytest.approx(R, rel=1e-12)
    assert below.excluded_names == ("F1", "F2", "F3", "N1", "N2", "N3")
    assert below.residual_rms < 1e-12
    # MNE's rule (default) leaves out the face only; the neck drags the fit
    face_only = fit_scalp_sphere(pos, names)
    assert face_only.exclude == "face"
    assert face_only.excluded_names == ("F1", "F2", "F3")
    assert face_only.used_names == tuple(names[:60]) + ("N1", "N2", "N3")
    assert face_only.residual_rms > 1e-3
    everything = fit_scalp_sphere(pos, names, exclude=None)
    assert everything.excluded_names == ()
    assert np.linalg.norm(np.subtract(everything.center, c)) > 1e-3
    # the SphereModel records the fit; the shells scale with the fitted radius
    sph = SphereModel.mne_default().fit(pos, exclude="below", ch_names=names)
    assert isinstance(sph.fit_result, SphereFit)
    assert sph.fit_result == below
    assert sph.scalp_radius == pytest.approx(R, rel=1e-12)
    np.testing.assert_allclose(sph.relative_radii, [0.9, 0.92, 0.97, 1.0])
    assert sph.with_berg_scherg().fit_result == below
    assert below.to_dict()["excluded"] == ["F1", "F2", "F3", "N1", "N2", "N3"]
    assert SphereModel.mne_default().fit_result is None
    # MNE's 1 um margin: points on the fiducial plane or the midline are kept
    edge = np.array([[0.0, 0.05, -0.5e-6], [0.02, 0.5e-6, -0.05], [0.0, 0.05, -2e-6]])
    assert fit_scalp_sphere(np.vstack([scalp, edge]), exclude="face").used[-3:] == (
        True,
        True,
        False,
    )


def test_fit_scalp_sphere_errors():
    with pytest.raises(ValueError, match="exclude must be"):
        fit_scalp_sphere(np.eye(3), exclude="neck")
    low = np.array([[0.01, 0.05, -0.02], [0.02, 0.06, -0.03], [0.03, 0.07, -0.01]])
    pos = np.vstack([low, [[0.0, 0.0, 0.09], [0.09, 0.0, 0.0]]])
    with pytest.raises(ValueError, match="got 2 .of 5; exclude='face' left out 3"):
        fit_scalp_sphere(pos)


def test_project_to_sphere():
    sph = SphereModel.mne_default(0.09, (0.001, -0.002, 0.04))
    c = np.array(sph.center)
    rng = np.random.default_rng(2)
    d = rng.normal(size=(7, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    offsets = np.array([0.0, 0.005, -0.005, 0.019, -0.0201, 0.03, -0.05])
    pos = c + d * (0.09 + offsets)[:, None]
    names = [f"E{k + 1}" for k in range(7)]
    proj = project_to_sphere(pos, sph, names)
    np.testing.assert_allclose(proj.pos, c + 0.09 * d, rtol=0, atol=1e-15)
    np.testing.assert_allclose(proj.radial_offset, offsets, rtol=0, atol=1e-15)
    np.testing.assert_allclose(proj.distance, np.abs(offsets), rtol=0, atol=1e-15)
    assert proj.ch_names == tuple(names)
    assert proj.far_channels == ("E5", "E6", "E7")
    (msg,) = proj.warnings
    assert "3 electrode(s) moved more than 20.0 mm" in msg
    assert "E5 (20.1 mm), E6 (30.0 mm), E7 (50.0 mm)" in msg
    # threshold is an option; unpacking gives (pos, distance, ...)
    p2, dist2, *_ = project_to_sphere(pos, sph, names, max_distance=0.06)
    np.testing.assert_array_equal(p2, proj.pos)
    np.testing.assert_array_equal(dist2, proj.distance)
    assert project_to_sphere(pos, sph, max_distance=0.06).warnings == ()
    with pytest.raises(ValueError, match="'E2' lies at the sphere centre"):
        project_to_sphere(np.vstack([pos[:1], c]), sph, ["E1", "E2"])
    with pytest.raises(ValueError, match="max_distance"):
        project_to_sphere(pos, sph, max_distance=-1.0)
