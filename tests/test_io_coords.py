"""Coordinate frames: conversion of positions and landmarks to the RAS head frame."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.io.coords import (
    RAS_HEAD,
    apply_transform,
    find_landmarks,
    frame_axes,
    landmark_transform,
    to_ras_head,
)

mne = importlib.import_module("mne")

# a head in RAS (m): nasion in front, ears left/right, slightly asymmetric
NAS = np.array([0.004, 0.098, -0.01])
LPA = np.array([-0.078, 0.006, -0.042])
RPA = np.array([0.083, -0.002, -0.038])


def _random_rigid(rng):
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))  # a rotation, det +1
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = q, rng.normal(0, 0.02, 3)
    return t


def test_frame_table():
    for name in ("CapTrak", "captrak", "ElektaNeuromag", "Neuromag"):
        assert frame_axes(name) == "head"
    for name in ("EEGLAB", "EEGLAB-HJ", "CTF", "4DBti", "KitYokogawa", "ctf"):
        assert frame_axes(name) == "ALS"
    for name in (
        "ChietiItab",
        "ACPC",
        "ScanRAS",
        "MNI152NLin2009cAsym",
        "MNI152NLin6ASym",
        "MNI305",
        "MNIColin27",
        "fsaverage",
        "fsaverage5",
        "fsaverageSym",
        "fsLR",
        "Talairach",
        "IXI549Space",
        "ICBM452AirSpace",
        "UNCInfant",
        "UNCInfant1V22",
        "individual",
    ):
        assert frame_axes(name) == "RAS", name
    for name in ("Other", "Pixels", "EEGLAB_HJ", "MNI152NLin2009dAsym", "", None):
        assert frame_axes(name) is None, name


def test_landmark_spellings():
    lm = {"Nasion": 0, "LeftPreauricular": 1, "right_pre_auricular": 2, "Inion": 3}
    assert find_landmarks(lm) == {
        "NAS": "Nasion",
        "LPA": "LeftPreauricular",
        "RPA": "right_pre_auricular",
    }
    assert find_landmarks({"NZ": 0, "lpa": 1, "RPA": 2}) == {
        "NAS": "NZ",
        "LPA": "lpa",
        "RPA": "RPA",
    }
    assert find_landmarks({"NAS": 0, "A1": 1}) == {"NAS": "NAS"}  # A1 is not a preauricular point
    assert find_landmarks(None) == {}


def test_landmark_frame_definition():
    t = landmark_transform(NAS, LPA, RPA)
    nas, lpa, rpa = apply_transform(t, np.array([NAS, LPA, RPA]))
    # LPA and RPA on the x axis (LPA negative), the nasion on +y, origin between
    np.testing.assert_allclose(lpa[1:], 0, atol=1e-15)
    np.testing.assert_allclose(rpa[1:], 0, atol=1e-15)
    np.testing.assert_allclose(nas[[0, 2]], 0, atol=1e-15)
    assert lpa[0] < 0 < rpa[0] and nas[1] > 0
    np.testing.assert_allclose(t[:3, :3] @ t[:3, :3].T, np.eye(3), atol=1e-15)
    assert np.linalg.det(t[:3, :3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="LPA and RPA coincide"):
        landmark_transform(NAS, LPA, LPA)
    with pytest.raises(ValueError, match="nasion lies on the LPA-RPA line"):
        landmark_transform((LPA + RPA) / 2, LPA, RPA)


@pytest.mark.parity
def test_landmark_transform_matches_mne():
    rng = np.random.default_rng(3)
    for _ in range(20):
        rigid = _random_rigid(rng)
        nas, lpa, rpa = apply_transform(rigid, np.array([NAS, LPA, RPA]))
        ours = landmark_transform(nas, lpa, rpa)
        theirs = mne.transforms.get_ras_to_neuromag_trans(nas, lpa, rpa)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-15)
    # the conversion of positions through the landmarks, against MNE's transform
    pos = rng.normal(0, 0.06, (30, 3))
    conv = to_ras_head(pos, "Other", {"NAS": NAS, "LPA": LPA, "RPA": RPA})
    theirs = mne.transforms.apply_trans(
        mne.transforms.get_ras_to_neuromag_trans(NAS, LPA, RPA), pos
    )
    np.testing.assert_allclose(conv.pos, theirs, rtol=0, atol=1e-15)
    assert conv.frame == "Other->RAS (landmarks)" and conv.warnings == []


def test_head_frames_are_kept_bit_for_bit():
    pos = np.random.default_rng(0).normal(0, 0.05, (10, 3))
    lm = {"NAS": NAS, "LPA": LPA, "RPA": RPA}  # not on the axes: still kept as given
    conv = to_ras_head(pos, "CapTrak", lm, "CapTrak", source="c.json")
    assert conv.pos is pos and conv.frame == "CapTrak" and conv.original == "CapTrak"
    assert all(
        conv.fiducials[k] is not None and np.array_equal(conv.fiducials[k], lm[k]) for k in lm
    )
    np.testing.assert_array_equal(conv.trans, np.eye(4))
    assert conv.warnings == []
    assert to_ras_head(pos, "ElektaNeuromag", lm).pos is pos


def test_als_frames_by_axes():
    ras = np.random.default_rng(1).normal(0, 0.05, (10, 3))
    als = np.column_stack([ras[:, 1], -ras[:, 0], ras[:, 2]])  # x' = y, y' = -x
    for name in ("EEGLAB", "CTF", "4DBti", "KitYokogawa", "EEGLAB-HJ"):
        conv = to_ras_head(als, name, {"Inion": als[0]}, source="c.json")
        np.testing.assert_array_equal(conv.pos, ras)  # exact: a swap and a sign
        np.testing.assert_array_equal(apply_transform(conv.trans, als), ras)
        np.testing.assert_array_equal(conv.fiducials["Inion"], ras[0])
        assert conv.frame == f"{name}->RAS (axes)" and conv.original == name
        assert conv.warnings == []


def test_landmarks_come_before_the_axes():
    rng = np.random.default_rng(2)
    head = landmark_transform(NAS, LPA, RPA)
    ras = rng.normal(0, 0.05, (12, 3))
    # a digitiser frame: ALS, but rotated and shifted away from EEGLAB's definition
    rigid = _random_rigid(rng)
    to_als = np.array([[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    t = to_als @ rigid
    pos, lm = (
        apply_transform(t, ras),
        {k: apply_transform(t, v) for k, v in (("NAS", NAS), ("LPA", LPA), ("RPA", RPA))},
    )
    conv = to_ras_head(pos, "EEGLAB", lm, "EEGLAB", source="c.json")
    assert conv.frame == "EEGLAB->RAS (landmarks)"
    np.testing.assert_allclose(conv.pos, apply_transform(head, ras), atol=1e-15)
    np.testing.assert_allclose(conv.fiducials["NAS"][[0, 2]], 0, atol=1e-15)
    np.testing.assert_allclose(conv.trans, head @ np.linalg.inv(t), atol=1e-14)


def test_ras_frames_kept_and_unknown_frames_warned():
    pos = np.random.default_rng(4).normal(0, 0.05, (5, 3))
    conv = to_ras_head(pos, "MNI152NLin2009cAsym", source="c.json")
    assert conv.pos is pos and conv.frame == "MNI152NLin2009cAsym" and conv.warnings == []
    conv = to_ras_head(pos, "Bogus", {"NAS": NAS}, source="/d/sub-01_coordsystem.json")
    assert conv.pos is pos and conv.frame == "unknown (as given)" and conv.original == "Bogus"
    assert conv.warnings == [
        "/d/sub-01_coordsystem.json: EEGCoordinateSystem 'Bogus' is not a coordinate system "
        "exgsrc knows and no NAS/LPA/RPA landmarks define the head; positions kept as given "
        "(taken as RAS: x right, y anterior, z up)"
    ]
    conv = to_ras_head(pos, None, source="e.tsv")
    assert conv.original == "n/a"
    assert conv.warnings == [
        "e.tsv: no EEGCoordinateSystem is given and no NAS/LPA/RPA landmarks define the head; "
        "positions kept as given (taken as RAS: x right, y anterior, z up)"
    ]
    assert RAS_HEAD == "RAS head (x right, y anterior, z up)"


def test_landmarks_in_another_frame_are_not_used():
    pos = np.random.default_rng(5).normal(0, 0.05, (5, 3))
    lm = {"NAS": NAS, "LPA": LPA, "RPA": RPA}
    conv = to_ras_head(pos, "CTF", lm, "T1w", source="c.json")
    assert conv.frame == "CTF->RAS (axes)" and conv.fiducials == {}
    assert conv.warnings == [
        "c.json: AnatomicalLandmarkCoordinateSystem 'T1w' differs from EEGCoordinateSystem "
        "'CTF'; the landmarks are not used"
    ]
    degenerate = {"NAS": LPA, "LPA": LPA, "RPA": RPA}
    conv = to_ras_head(pos, "CTF", degenerate, source="c.json")
    assert conv.frame == "CTF->RAS (axes)"
    assert conv.warnings == [
        "c.json: landmarks do not define a head frame (the nasion lies on the LPA-RPA line)"
    ]
