"""Coordinate frames of electrode positions: conversion to one RAS head frame.

Every position exgsrc writes is in one head frame, :data:`RAS_HEAD`: x to the
right, y anterior, z up, metres. BIDS datasets declare the frame of their
positions in ``coordsystem.json`` (``EEGCoordinateSystem``, keywords of the BIDS
appendix "Coordinate systems"); :func:`to_ras_head` converts positions and
landmarks from that frame, by the first rule that applies:

1. Fiducial-defined RAS head frames (``CapTrak``, ``ElektaNeuromag``; also the
   name ``Neuromag``) are the target frame already: positions and landmarks are
   returned unchanged, not a bit altered.
2. Nasion, LPA and RPA landmarks (``AnatomicalLandmarkCoordinates``, in the same
   frame as the positions) define the head frame as CapTrak and Neuromag do
   (:func:`landmark_transform`): x from LPA through RPA, origin the projection
   of the nasion onto the LPA-RPA line, y through the nasion, z = x cross y.
   Accepted spellings (case, ``_``, ``-`` and spaces ignored): ``NAS``,
   ``Nasion``, ``NZ``; ``LPA``, ``LeftPreauricular`` (``...Point``),
   ``LeftEar``; ``RPA``, ``RightPreauricular`` (``...Point``), ``RightEar``.
3. The frame's name gives its axes: ALS frames (x anterior, y left, z up:
   ``CTF``, ``4DBti``, ``KitYokogawa``, ``EEGLAB``, ``EEGLAB-HJ``) become RAS by
   ``x_ras = -y, y_ras = x, z_ras = z`` (origin kept); RAS frames (``ChietiItab``,
   ``ACPC``, ``ScanRAS``, the standard templates ``MNI152...``, ``MNI305``,
   ``MNIColin27``, ``ICBM452...``, ``IXI549Space``, ``fsaverage...``, ``fsLR``,
   ``Talairach``, ``NIHPD``, ``OASIS30...``, ``UNCInfant...``, and the
   ``individual``/``study`` spaces) are kept as they are.
4. Anything else (``Other``, ``Pixels``, a misspelt or missing name) keeps the
   positions as given, taken as RAS, with a recorded warning naming the file.

Frame names are matched case-insensitively. Landmarks declared in another frame
than the positions (``AnatomicalLandmarkCoordinateSystem`` differs from
``EEGCoordinateSystem``) cannot place the positions: they are not used and not
returned, with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "RAS_HEAD",
    "HeadFrame",
    "frame_axes",
    "find_landmarks",
    "landmark_transform",
    "apply_transform",
    "to_ras_head",
]

#: The one frame of every position exgsrc writes.
RAS_HEAD = "RAS head (x right, y anterior, z up)"

_HEAD = {"captrak", "elektaneuromag", "neuromag"}
_ALS = {"ctf", "4dbti", "kityokogawa", "eeglab", "eeglab-hj"}
_RAS = {"chietiitab", "acpc", "scanras", "individual", "study"}
_TEMPLATES = re.compile(
    r"^(icbm452airspace|icbm452warp5space|ixi549space|fsaverage(sym|[3-6])?|fslr|mnicolin27"
    r"|mni152lin|mni152nlin2009[abc](sym|asym)|mni152nlin6(sym|asym)|mni305|nihpd"
    r"|oasis30antsoasisants|oasis30atropos|talairach|uncinfant([0-2]v2[1-3])?)$"
)
# (x, y, z) of an ALS frame -> RAS: x_ras = -y, y_ras = x, z_ras = z
_ALS_TO_RAS = np.array(
    [[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1]]
)
_SPELLINGS = {
    "NAS": ("nas", "nasion", "nz"),
    "LPA": ("lpa", "leftpreauricular", "leftpreauricularpoint", "leftear"),
    "RPA": ("rpa", "rightpreauricular", "rightpreauricularpoint", "rightear"),
}


def _key(name) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def frame_axes(name: str | None) -> str | None:
    """Kind of a BIDS coordinate system.

    Parameters
    ----------
    name : str | None
        ``EEGCoordinateSystem`` keyword (case-insensitive).

    Returns
    -------
    str | None
        ``"head"`` (fiducial-defined RAS head frame: CapTrak, ElektaNeuromag),
        ``"ALS"`` (CTF, 4DBti, KitYokogawa, EEGLAB, EEGLAB-HJ), ``"RAS"``
        (ChietiItab, ACPC, ScanRAS, the template spaces, individual, study) or
        None (unknown, ``Other``, ``Pixels``, missing).
    """
    if name is None:
        return None
    key = str(name).strip().lower()
    if key in _HEAD:
        return "head"
    if key in _ALS:
        return "ALS"
    if key in _RAS or _TEMPLATES.match(key):
        return "RAS"
    return None


def find_landmarks(landmarks: Mapping | None) -> dict[str, str]:
    """Which entries of a landmark mapping are the nasion, LPA and RPA.

    Parameters
    ----------
    landmarks : mapping of str -> (3,) | None
        ``AnatomicalLandmarkCoordinates``.

    Returns
    -------
    dict
        ``{"NAS": key, "LPA": key, "RPA": key}`` for those found (first match
        of the accepted spellings, see the module docstring); may be partial.
    """
    found: dict[str, str] = {}
    for k in landmarks or {}:
        for canon, names in _SPELLINGS.items():
            if canon not in found and _key(k) in names:
                found[canon] = k
    return found


def landmark_transform(nasion, lpa, rpa) -> np.ndarray:
    """The fiducial-defined head frame (CapTrak, Neuromag) of three landmarks.

    x runs from LPA through RPA; the origin is the projection of the nasion onto
    the LPA-RPA line; y points from the origin to the nasion; z = x cross y. The
    same frame as MNE-Python's ``get_ras_to_neuromag_trans``.

    Parameters
    ----------
    nasion, lpa, rpa : array-like, shape (3,)
        Landmarks in any right-handed frame (any length unit).

    Returns
    -------
    trans : ndarray, shape (4, 4)
        Maps homogeneous coordinates of that frame to the head frame.

    Raises
    ------
    ValueError
        LPA and RPA coincide, or the nasion lies on the LPA-RPA line.
    """
    nas, lpa, rpa = (np.asarray(p, dtype=float).reshape(3) for p in (nasion, lpa, rpa))
    right = rpa - lpa
    width = np.linalg.norm(right)
    if not width > 0:
        raise ValueError("LPA and RPA coincide")
    ex = right / width
    origin = lpa + np.dot(nas - lpa, ex) * ex
    ant = nas - origin
    depth = np.linalg.norm(ant)
    if not depth > 1e-6 * width:
        raise ValueError("the nasion lies on the LPA-RPA line")
    ey = ant / depth
    rot = np.vstack([ex, ey, np.cross(ex, ey)])
    trans = np.eye(4)
    trans[:3, :3] = rot
    trans[:3, 3] = -rot @ origin
    return trans


def apply_transform(trans, pos) -> np.ndarray:
    """Apply a 4x4 transform to points.

    Parameters
    ----------
    trans : array-like, shape (4, 4)
    pos : array-like, shape (n, 3) or (3,)

    Returns
    -------
    ndarray
        Transformed points, the shape of ``pos``.
    """
    trans = np.asarray(trans, dtype=float)
    pos = np.asarray(pos, dtype=float)
    return pos @ trans[:3, :3].T + trans[:3, 3]


def _als_to_ras(pos: np.ndarray) -> np.ndarray:
    """Exact axis swap (no arithmetic beyond a sign)."""
    pos = np.asarray(pos, dtype=float)
    return np.stack([-pos[..., 1], pos[..., 0], pos[..., 2]], axis=-1)


@dataclass(frozen=True)
class HeadFrame:
    """Positions converted to :data:`RAS_HEAD`, and how.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
        Converted positions (m).
    trans : ndarray, shape (4, 4)
        Maps the original coordinates (m, homogeneous) to the RAS head frame.
    frame : str
        How: the frame's name when kept (``"CapTrak"``, ``"ACPC"``),
        ``"<name>->RAS (axes)"``, ``"<name>->RAS (landmarks)"``, or
        ``"unknown (as given)"``.
    original : str
        The declared frame (``"n/a"`` when none).
    fiducials : dict
        Landmark name (as given) -> converted (3,) position (m).
    warnings : list of str
        Naming the file.
    """

    pos: np.ndarray
    trans: np.ndarray
    frame: str
    original: str
    fiducials: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def to_ras_head(
    pos,
    frame: str | None,
    landmarks: Mapping | None = None,
    landmark_frame: str | None = None,
    source: str = "",
) -> HeadFrame:
    """Convert positions (and landmarks) to the RAS head frame.

    Parameters
    ----------
    pos : array-like, shape (n, 3)
        Positions in metres, in ``frame``.
    frame : str | None
        ``EEGCoordinateSystem`` (None: not declared).
    landmarks : mapping of str -> (3,) | None
        ``AnatomicalLandmarkCoordinates`` in metres.
    landmark_frame : str | None
        ``AnatomicalLandmarkCoordinateSystem``; None: taken as ``frame``.
    source : str
        File named in the warnings (the ``coordsystem.json``).

    Returns
    -------
    HeadFrame
        See the module docstring for the rules, in their order.
    """
    name = None if frame is None else str(frame).strip() or None
    original = name or "n/a"
    kind = frame_axes(name)
    lms = {k: np.asarray(v, dtype=float) for k, v in (landmarks or {}).items()}
    warnings: list[str] = []
    if lms and landmark_frame is not None and _key(landmark_frame) != _key(name or ""):
        warnings.append(
            f"{source}: AnatomicalLandmarkCoordinateSystem {landmark_frame!r} differs from "
            f"EEGCoordinateSystem {original!r}; the landmarks are not used"
        )
        lms = {}
    if kind == "head":
        return HeadFrame(np.asarray(pos, dtype=float), np.eye(4), name, original, lms, warnings)
    found = find_landmarks(lms)
    if len(found) == 3:
        try:
            trans = landmark_transform(*(lms[found[k]] for k in ("NAS", "LPA", "RPA")))
        except ValueError as err:
            warnings.append(f"{source}: landmarks do not define a head frame ({err})")
        else:
            fid = {k: apply_transform(trans, v) for k, v in lms.items()}
            how = f"{original}->RAS (landmarks)"
            return HeadFrame(apply_transform(trans, pos), trans, how, original, fid, warnings)
    if kind == "ALS":
        fid = {k: _als_to_ras(v) for k, v in lms.items()}
        return HeadFrame(
            _als_to_ras(pos), _ALS_TO_RAS.copy(), f"{name}->RAS (axes)", original, fid, warnings
        )
    if kind == "RAS":
        return HeadFrame(np.asarray(pos, dtype=float), np.eye(4), name, original, lms, warnings)
    what = (
        "no EEGCoordinateSystem is given"
        if name is None
        else f"EEGCoordinateSystem {name!r} is not a coordinate system exgsrc knows"
    )
    warnings.append(
        f"{source}: {what} and no NAS/LPA/RPA landmarks define the head; positions kept as "
        "given (taken as RAS: x right, y anterior, z up)"
    )
    return HeadFrame(
        np.asarray(pos, dtype=float), np.eye(4), "unknown (as given)", original, lms, warnings
    )
