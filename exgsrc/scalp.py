"""Electrodes against the scalp sphere: a fit that leaves out the face, radial projection.

High-density nets (EGI HydroCel 129/256) carry cheek and neck electrodes far below
the part of the head a sphere models. :func:`fit_scalp_sphere` fits centre and radius
without them (MNE-Python's rule for the face; optionally the neck too), and
:func:`project_to_sphere` moves electrodes radially onto the fitted scalp sphere, as
FieldTrip and Brainstorm do, reporting how far each one moved. Plain numpy; the
sphere model itself is :class:`exgsrc.forward.SphereModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "SphereFit",
    "SphereProjection",
    "electrode_array",
    "fit_scalp_sphere",
    "project_to_sphere",
]

_FACE_MARGIN = 1e-6
_EXCLUDE_RULES = ("face", "below", None)


def electrode_array(electrodes, ch_names=None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Positions and names of electrodes given as an array or a Montage-like object.

    Parameters
    ----------
    electrodes : array-like, shape (n_channels, 3) | Montage
        Positions in metres, or an object with ``pos`` and ``ch_names``.
    ch_names : sequence of str | None
        Names (default: from a Montage, else ``EEG001...``).

    Returns
    -------
    pos : ndarray, shape (n_channels, 3)
        Metres, finite.
    ch_names : tuple of str
        Unique names.

    Raises
    ------
    ValueError
        Wrong shape, no electrode, a name count that does not match, duplicate
        names, or a non-finite position (naming the electrode).
    """
    if hasattr(electrodes, "pos") and hasattr(electrodes, "ch_names"):
        if ch_names is None:
            ch_names = list(electrodes.ch_names)
        electrodes = electrodes.pos
    pos = np.array(electrodes, float)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"electrodes must have shape (n_channels, 3), got {pos.shape}")
    if len(pos) == 0:
        raise ValueError("electrodes: zero electrodes given")
    if ch_names is None:
        ch_names = [f"EEG{k + 1:03d}" for k in range(len(pos))]
    ch_names = tuple(str(c) for c in ch_names)
    if len(ch_names) != len(pos):
        raise ValueError(
            f"ch_names has {len(ch_names)} entries but electrodes has {len(pos)} positions"
        )
    if len(set(ch_names)) != len(ch_names):
        seen = set()
        dup = next(c for c in ch_names if c in seen or seen.add(c))
        raise ValueError(f"ch_names: duplicate channel name {dup!r}")
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise ValueError(f"electrode {ch_names[bad[0]]!r} has a non-finite position {pos[bad[0]]}")
    return pos, ch_names


# ----------------------------------------------------------------------------
# Sphere fit to the electrodes


@dataclass(frozen=True)
class SphereFit:
    """Result of :func:`fit_scalp_sphere`: a sphere and which electrodes made it.

    Parameters
    ----------
    center : tuple of float, length 3
        Fitted centre (m), in the frame of the electrodes.
    radius : float
        Fitted radius (m).
    ch_names : tuple of str, length n_channels
        All electrodes given to the fit.
    used : tuple of bool, length n_channels
        ``True`` for the electrodes the sphere was fitted to.
    exclude : {"face", "below"} | None
        The rule that left the others out (see :func:`fit_scalp_sphere`).
    residual_rms : float
        Root mean square of ``|p - center| - radius`` over the used electrodes (m).
    """

    center: tuple
    radius: float
    ch_names: tuple
    used: tuple
    exclude: str | None
    residual_rms: float

    @property
    def used_names(self) -> tuple[str, ...]:
        """Electrodes the sphere was fitted to."""
        return tuple(n for n, u in zip(self.ch_names, self.used, strict=True) if u)

    @property
    def excluded_names(self) -> tuple[str, ...]:
        """Electrodes left out by the ``exclude`` rule."""
        return tuple(n for n, u in zip(self.ch_names, self.used, strict=True) if not u)

    def to_dict(self) -> dict:
        """Plain-Python summary for provenance records (JSON/netCDF friendly).

        Returns
        -------
        summary : dict
            ``center`` (list of 3 floats, m), ``radius`` (m), ``exclude``
            (str or None), ``n_used`` (int), ``excluded`` (list of names),
            ``residual_rms`` (m).
        """
        return {
            "center": list(self.center),
            "radius": self.radius,
            "exclude": self.exclude,
            "n_used": int(sum(self.used)),
            "excluded": list(self.excluded_names),
            "residual_rms": self.residual_rms,
        }


def _fit_mask(pos, exclude):
    """Electrodes kept for the sphere fit under rule ``exclude``, shape (n,) bool."""
    if exclude not in _EXCLUDE_RULES:
        raise ValueError(f"exclude must be 'face', 'below' or None, got {exclude!r}")
    if exclude is None:
        return np.ones(len(pos), bool)
    below = pos[:, 2] < -_FACE_MARGIN
    if exclude == "below":
        return ~below
    # MNE-Python (mne.bem.get_fitting_dig, exclude_frontal=True): drop the points
    # low and in front (nose, cheeks, jaw) before fitting
    return ~(below & (pos[:, 1] > _FACE_MARGIN))


def fit_scalp_sphere(electrodes, ch_names=None, exclude: str | None = "face") -> SphereFit:
    """Fit a sphere to electrode positions, leaving out the face (and neck).

    Linear least squares ``|p|**2 = 2 p.c + (R**2 - |c|**2)`` for the centre
    ``c`` and radius ``R`` (as MNE-Python's ``fit_sphere_to_headshape``) over
    the electrodes kept by ``exclude``.

    Parameters
    ----------
    electrodes : array-like, shape (n_channels, 3) | Montage
        Electrode positions (m) in a RAS head frame whose xy-plane passes
        through the fiducials (x towards RPA, y towards the nasion, z up), as
        MNE's head frame and BIDS CapTrak: the rules below depend on it.
    ch_names : sequence of str | None
        Names (default: from a Montage, else ``EEG001...``).
    exclude : {"face", "below"} | None
        ``"face"`` (default, MNE-Python's rule): leave out points low in
        front, ``z < -1e-6`` and ``y > 1e-6`` (nose, cheeks, jaw).
        ``"below"``: leave out every point with ``z < -1e-6`` (face and neck).
        ``None``: fit all electrodes.

    Returns
    -------
    fit : SphereFit
        Centre (m), radius (m), the electrodes used and left out.

    Raises
    ------
    ValueError
        Fewer than 4 electrodes left, or the ones left are coplanar.
    """
    pos, names = electrode_array(electrodes, ch_names)
    used = _fit_mask(pos, exclude)
    pts = pos[used]
    if len(pts) < 4:
        raise ValueError(
            f"electrodes: need at least 4 positions to fit a sphere, got {len(pts)} "
            f"(of {len(pos)}; exclude={exclude!r} left out {int((~used).sum())})"
        )
    A = np.c_[2 * pts, np.ones(len(pts))]
    b = np.sum(pts**2, axis=1)
    x, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    if rank < 4:
        raise ValueError("electrodes: positions are degenerate (coplanar); cannot fit a sphere")
    center = x[:3]
    radius = float(np.sqrt(x[3] + center @ center))
    resid = np.linalg.norm(pts - center, axis=1) - radius
    return SphereFit(
        center=tuple(center.tolist()),
        radius=radius,
        ch_names=names,
        used=tuple(bool(u) for u in used),
        exclude=exclude,
        residual_rms=float(np.sqrt(np.mean(resid**2))),
    )


class SphereProjection(NamedTuple):
    """Result of :func:`project_to_sphere`.

    Attributes
    ----------
    pos : ndarray, shape (n_channels, 3)
        Electrodes moved radially onto the scalp sphere (m).
    distance : ndarray, shape (n_channels,)
        How far each electrode moved (m, >= 0).
    radial_offset : ndarray, shape (n_channels,)
        Signed distance from the scalp sphere before the projection (m;
        negative inside, positive outside).
    ch_names : tuple of str, length n_channels
    far_channels : tuple of str
        Electrodes that moved more than ``max_distance``, in input order.
    warnings : tuple of str
        One message naming ``far_channels`` and their distances (empty when none).
    """

    pos: np.ndarray
    distance: np.ndarray
    radial_offset: np.ndarray
    ch_names: tuple
    far_channels: tuple
    warnings: tuple


def project_to_sphere(
    electrodes, sphere, ch_names=None, max_distance: float = 0.020
) -> SphereProjection:
    """Move electrodes radially onto the scalp sphere (FieldTrip/Brainstorm style).

    Each electrode ``p`` goes to ``c + R (p - c) / |p - c|`` with ``c`` the
    sphere centre and ``R`` its scalp radius. This is an explicit choice
    before :func:`make_sphere_forward`, which otherwise evaluates electrodes
    where they are (MNE-Python's convention).

    Parameters
    ----------
    electrodes : array-like, shape (n_channels, 3) | Montage
        Electrode positions (m), same frame as ``sphere``.
    sphere : SphereModel
        Uses ``center`` and ``scalp_radius``.
    ch_names : sequence of str | None
        Names (default: from a Montage, else ``EEG001...``).
    max_distance : float
        Electrodes moved farther than this (m, default 0.020) are listed in
        ``far_channels`` and in a warning message: on such electrodes the
        sphere is a poor model of the head (face, neck) or the position is wrong.

    Returns
    -------
    projection : SphereProjection
        ``pos`` (n_channels, 3) m, ``distance`` (n_channels,) m,
        ``radial_offset`` (n_channels,) m, ``ch_names``, ``far_channels``,
        ``warnings``.

    Raises
    ------
    ValueError
        An electrode at the sphere centre (no direction to project along).
    """
    if not (hasattr(sphere, "center") and hasattr(sphere, "scalp_radius")):
        raise ValueError(f"sphere must be a SphereModel, got {type(sphere).__name__}")
    max_distance = float(max_distance)
    if not max_distance >= 0:
        raise ValueError(f"max_distance must be >= 0 (m), got {max_distance}")
    pos, names = electrode_array(electrodes, ch_names)
    c = np.asarray(sphere.center)
    rel = pos - c
    r = np.linalg.norm(rel, axis=1)
    at_center = np.flatnonzero(r == 0)
    if at_center.size:
        raise ValueError(
            f"electrode {names[at_center[0]]!r} lies at the sphere centre; "
            "it has no direction to be projected along"
        )
    R = sphere.scalp_radius
    projected = c + rel * (R / r)[:, None]
    offset = r - R
    distance = np.abs(offset)
    far = np.flatnonzero(distance > max_distance)
    warnings = ()
    if far.size:
        listed = ", ".join(f"{names[k]} ({distance[k] * 1e3:.1f} mm)" for k in far)
        warnings = (
            f"{far.size} electrode(s) moved more than {max_distance * 1e3:.1f} mm onto the "
            f"scalp sphere (radius {R * 1e3:.1f} mm): {listed}",
        )
    return SphereProjection(
        pos=projected,
        distance=distance,
        radial_offset=offset,
        ch_names=names,
        far_channels=tuple(names[k] for k in far),
        warnings=warnings,
    )
