"""Electrode positions: :class:`Montage`, BIDS ``electrodes.tsv``, standard 10-X caps, EGI nets.

EGI HydroCel nets
-----------------
``standard_montage("GSN-HydroCel-129")`` and ``("GSN-HydroCel-256")`` return
EGI's template positions of the high-density Geodesic Sensor Nets, cheek and
neck electrodes included, in the fiducial-defined head frame (x through RPA,
y through the nasion, z up; metres). They are read from small tables shipped
in ``exgsrc/io/data/`` (generated once from MNE-Python's montage files by
``tools/make_hydrocel_positions.py``), so no MNE is needed at run time.

Standard montages on a sphere
-----------------------------
:func:`standard_montage` computes positions of the 10-20, 10-10 and 10-05 systems
(Jasper 1958; Chatrian et al. 1985; Oostenveld & Praamstra 2001) from the
systems' geometric definition on a sphere of the given radius, centred at the
origin, with x to the right, y to the front, z up (RAS, as BIDS' CapTrak/head
frames). As in the idealised spherical layouts of BESA and EEGLAB, the 10 %
circumference line (Fpz, Fp1, F7, T7, P7, O1, Oz, ...) is the equator and Cz the
pole, so that the electrodes cover the upper hemisphere of a sphere fitted to
the scalp:

* Midline sites: the arc Fpz-Cz-Oz spans 180°, so each 10 % of the nasion-inion
  distance is 22.5°: Fpz 0°, AFz 22.5°, Fz 45°, FCz 67.5°, Cz 90°, CPz 112.5°, Pz 135°,
  POz 157.5°, Oz 180° of elevation from the front (10-05 adds the half steps AFpz,
  AFFz, ..., OIz; Nz and Iz lie 22.5° below the equator).
* Circumference (equator) sites at azimuth steps of 18° from the front: Fp1 18°,
  AF7 36°, F7 54°, FT7 72°, T7 90°, TP7 108°, P7 126°, PO7 144°, O1 162°.
* Every other row (e.g. F9 F7 F5 F3 F1 Fz F2 ... F10) lies on the circle through
  the row's midline site and its two circumference sites (F7, F8); the arc from
  the midline site to the circumference site is divided into four equal steps
  (1, 3, 5, 7 on the left; 2, 4, 6, 8 on the right), 9/10 continue one step
  beyond (below the equator), and 10-05 ``h`` sites lie half a step before the
  numbered site (``F1h`` between Fz and F1, ``F9h`` between F7 and F9).
* The Fp, O, OI, I rows are short: their sites lie on the latitude circle of the
  row's midline site, ``1``/``2`` at 18° azimuth from it, ``1h``/``2h`` at 9°.
* Aliases T3/T4/T5/T6 = T7/T8/P7/P8; M1/M2 = TP9/TP10; O9/O10 = I1/I2; A1/A2 = LPA/RPA, which
  (like the nasion) lie 22.5° below the equator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from ._errors import BidsError
from ._tsv import read_json, read_tsv, tsv_float
from .coords import to_ras_head
from .units import length_scale

__all__ = [
    "Montage",
    "standard_montage",
    "standard_positions",
    "read_electrodes",
    "fit_sphere_radius",
]


@dataclass(frozen=True)
class Montage:
    """Electrode positions.

    Parameters
    ----------
    ch_names : tuple of str, length n_channels
    pos : ndarray, shape (n_channels, 3)
        Positions in metres.
    coord_frame : str
        How the positions came to the RAS head frame (x right, y anterior, z
        up; :data:`exgsrc.io.coords.RAS_HEAD`): the frame's name when it was
        kept (``"CapTrak"``, ``"head"`` for the standard montages), or the
        conversion (``"EEGLAB->RAS (axes)"``, ``"CTF->RAS (landmarks)"``,
        ``"unknown (as given)"``; see :func:`exgsrc.io.coords.to_ras_head`).
    meta : dict
        ``source`` (file), ``fiducials`` (dict name -> (3,) m, in the same
        frame as ``pos``), ``missing`` (channels without a position),
        ``warnings`` (list of str), ``coord_frame_original`` (the declared
        frame; default ``coord_frame``) and ``coord_transform`` ((4, 4) array
        from the original coordinates in m to ``pos``; default identity).
    """

    ch_names: tuple[str, ...]
    pos: np.ndarray
    coord_frame: str = "head"
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "ch_names", tuple(self.ch_names))
        pos = np.asarray(self.pos, dtype=float).reshape(-1, 3)
        object.__setattr__(self, "pos", pos)
        if pos.shape[0] != len(self.ch_names):
            raise ValueError(f"Montage: {len(self.ch_names)} names but {pos.shape[0]} positions")
        dup = sorted({n for n in self.ch_names if self.ch_names.count(n) > 1})
        if dup:
            raise ValueError(f"Montage: duplicate channel names {dup}")
        self.meta.setdefault("warnings", [])
        self.meta.setdefault("coord_frame_original", self.coord_frame)
        self.meta.setdefault("coord_transform", np.eye(4))

    @property
    def n_channels(self) -> int:
        """Number of electrodes."""
        return len(self.ch_names)

    def get_positions(self, names, case_sensitive: bool = False) -> np.ndarray:
        """Electrode positions of ``names``.

        Parameters
        ----------
        names : sequence of str
            Channel names, in the order wanted.
        case_sensitive : bool
            Match names exactly (default: ignore case).

        Returns
        -------
        pos : ndarray, shape (n_names, 3)
            Positions in m, in this montage's coordinate frame.

        Raises
        ------
        ValueError
            Naming the channels that have no position.
        """
        if case_sensitive:
            lut = {n: i for i, n in enumerate(self.ch_names)}
            key = str
        else:
            lut = {n.lower(): i for i, n in enumerate(self.ch_names)}
            key = str.lower
        missing = [n for n in names if key(n) not in lut]
        if missing:
            raise ValueError(
                f"Montage ({self.meta.get('source', '?')}): no position for {missing}"
            )
        return self.pos[[lut[key(n)] for n in names]]

    def pick_channels(self, names, case_sensitive: bool = False) -> Montage:
        """A Montage restricted to ``names``.

        Parameters
        ----------
        names : sequence of str
            Channels to keep, in that order; the result uses the names as given.
        case_sensitive : bool
            Match names exactly (default: ignore case).

        Returns
        -------
        Montage

        Raises
        ------
        ValueError
            Naming the channels that have no position.
        """
        pos = self.get_positions(names, case_sensitive)
        return Montage(tuple(names), pos, self.coord_frame, dict(self.meta))

    def to_xarray(self):
        """``xarray.Dataset`` with var ``pos`` (channel, xyz) in m and coords x, y, z."""
        import xarray as xr

        ds = xr.Dataset(
            {
                "pos": (
                    ("channel", "xyz"),
                    self.pos,
                    {"units": "m", "long_name": "electrode position"},
                )
            },
            coords={
                "channel": list(self.ch_names),
                "xyz": ["x", "y", "z"],
                "x": ("channel", self.pos[:, 0], {"units": "m"}),
                "y": ("channel", self.pos[:, 1], {"units": "m"}),
                "z": ("channel", self.pos[:, 2], {"units": "m"}),
            },
            attrs={"coord_frame": self.coord_frame, "source": str(self.meta.get("source", ""))},
        )
        return ds

    @classmethod
    def from_xarray(cls, ds) -> Montage:
        """Inverse of :meth:`to_xarray`."""
        return cls(
            tuple(str(c) for c in ds["channel"].values),
            np.asarray(ds["pos"].values, dtype=float),
            str(ds.attrs.get("coord_frame", "head")),
            {"source": ds.attrs.get("source", "")},
        )


# ----------------------------------------------------------------------------------
# standard 10-X positions on a sphere
# ----------------------------------------------------------------------------------

# row prefix -> fraction of the Nz-Iz arc of its midline site
_ROWS = {
    "N": 0.0,
    "NFp": 0.05,
    "Fp": 0.10,
    "AFp": 0.15,
    "AF": 0.20,
    "AFF": 0.25,
    "F": 0.30,
    "FFC": 0.35,
    "FC": 0.40,
    "FCC": 0.45,
    "C": 0.50,
    "CCP": 0.55,
    "CP": 0.60,
    "CPP": 0.65,
    "P": 0.70,
    "PPO": 0.75,
    "PO": 0.80,
    "POO": 0.85,
    "O": 0.90,
    "OI": 0.95,
    "I": 1.0,
}
# temporal prefixes used for numbers >= 7 (same row geometry)
_TEMPORAL = {
    "FC": "FT",
    "C": "T",
    "CP": "TP",
    "FFC": "FFT",
    "FCC": "FTT",
    "CCP": "TTP",
    "CPP": "TPP",
}
_SHORT_ROWS = ("Fp", "O", "OI", "I", "N", "NFp")


def _elev(f: float) -> float:
    """Elevation angle from the front along the midline of the site at Nz-Iz fraction f."""
    return np.pi * (f - 0.1) / 0.8


def _sph(az_from_front: float, lat: float, left: bool) -> np.ndarray:
    """Unit vector: azimuth measured from +y (front) towards -x (left) or +x (right)."""
    sx = -1.0 if left else 1.0
    return np.array(
        [
            sx * np.sin(az_from_front) * np.cos(lat),
            np.cos(az_from_front) * np.cos(lat),
            np.sin(lat),
        ]
    )


def _row_point(f: float, steps: float, left: bool) -> np.ndarray:
    """Site ``steps`` quarter-arcs from the midline site of row ``f`` along the row circle."""
    e = _elev(f)
    mid = np.array([0.0, np.cos(e), np.sin(e)])
    if steps == 0:
        return mid
    side = _sph(np.pi * f, 0.0, left)  # circumference site (7/8) on the equator
    other = _sph(np.pi * f, 0.0, not left)
    # circle through mid, side, other (its plane contains the x direction by symmetry)
    normal = np.cross(side - mid, other - mid)
    normal /= np.linalg.norm(normal)
    center = np.dot(mid, normal) * normal
    u = mid - center
    rho = np.linalg.norm(u)
    u /= rho
    v = side - center
    v -= np.dot(v, u) * u
    v /= np.linalg.norm(v)
    phi_side = np.arctan2(np.dot(side - center, v), np.dot(side - center, u))
    phi = phi_side * steps / 4.0
    p = center + rho * (np.cos(phi) * u + np.sin(phi) * v)
    return p / np.linalg.norm(p)


def _short_row_point(f: float, steps: float, left: bool) -> np.ndarray:
    """Fp/O/OI/I rows: along the latitude circle of the midline site, 18° per step."""
    e = _elev(f)
    front = e <= np.pi / 2
    lat = e if front else np.pi - e
    az = np.deg2rad(18.0) * steps
    return _sph(az if front else np.pi - az, lat, left)


def _all_standard_labels() -> dict[str, tuple[str, float, bool, str]]:
    """label -> (row, steps, left, system) with system the smallest of 1020/1010/1005."""
    out: dict[str, tuple[str, float, bool, str]] = {}
    tenten_rows = ("Fp", "AF", "F", "FC", "C", "CP", "P", "PO", "O", "I")
    for row in _ROWS:
        if row in ("N", "NFp"):
            continue
        in_1010 = row in tenten_rows
        mid = row + "z"
        out[mid] = (row, 0.0, True, "1010" if in_1010 else "1005")
        if row in _SHORT_ROWS:
            for k, left in ((1, True), (2, False)):
                out[f"{row}{k}"] = (row, 1.0, left, "1010" if in_1010 else "1005")
                out[f"{row}{k}h"] = (row, 0.5, left, "1005")
            continue
        for k in range(1, 11):
            left = k % 2 == 1
            steps = (k + 1) // 2
            pre = _TEMPORAL.get(row, row) if steps >= 4 else row
            system = "1010" if in_1010 else "1005"
            out[f"{pre}{k}"] = (row, float(steps), left, system)
            out[f"{pre}{k}h"] = (row, steps - 0.5, left, "1005")
    ten20 = {
        "Fp1",
        "Fpz",
        "Fp2",
        "F7",
        "F3",
        "Fz",
        "F4",
        "F8",
        "T7",
        "C3",
        "Cz",
        "C4",
        "T8",
        "P7",
        "P3",
        "Pz",
        "P4",
        "P8",
        "O1",
        "Oz",
        "O2",
    }
    for k in ten20:
        row, steps, left, _ = out[k]
        out[k] = (row, steps, left, "1020")
    return out


_LABELS = _all_standard_labels()
_ALIASES = {
    "T3": "T7",
    "T4": "T8",
    "T5": "P7",
    "T6": "P8",
    "M1": "TP9",
    "M2": "TP10",
    "O9": "I1",
    "O10": "I2",
}
_SYSTEM_ORDER = {"1020": 0, "1010": 1, "1005": 2}
_NAMES = {
    "standard_1020": "1020",
    "10-20": "1020",
    "1020": "1020",
    "standard_1010": "1010",
    "10-10": "1010",
    "1010": "1010",
    "standard_1005": "1005",
    "10-05": "1005",
    "1005": "1005",
    "10-5": "1005",
}


def standard_positions(
    system: str = "standard_1005", radius: float = 0.095
) -> dict[str, np.ndarray]:
    """All sites of a 10-X system on a sphere.

    Parameters
    ----------
    system : {"standard_1020", "standard_1010", "standard_1005"}
        Also accepted: ``"10-20"``, ``"10-10"``, ``"10-05"``.
    radius : float
        Sphere radius (m).

    Returns
    -------
    dict of str -> ndarray, shape (3,)
        Positions (m) including aliases (T3...), A1/A2, M1/M2 and the fiducials
        ``Nz``, ``LPA``, ``RPA``, ``Iz``.
    """
    if system not in _NAMES:
        raise ValueError(f"standard montage {system!r} unknown; use one of {sorted(_NAMES)}")
    lev = _SYSTEM_ORDER[_NAMES[system]]
    out = {}
    for lab, (row, steps, left, sysname) in _LABELS.items():
        if _SYSTEM_ORDER[sysname] > lev:
            continue
        f = _ROWS[row]
        p = _short_row_point(f, steps, left) if row in _SHORT_ROWS else _row_point(f, steps, left)
        out[lab] = radius * p
    for a, b in _ALIASES.items():
        if b in out:
            out[a] = out[b].copy()
    low = np.deg2rad(22.5)  # fiducials: 10 % of the nasion-inion distance below the equator
    out["Nz"] = radius * np.array([0.0, np.cos(low), -np.sin(low)])
    out["Iz"] = radius * np.array([0.0, -np.cos(low), -np.sin(low)])
    out["LPA"] = radius * np.array([-np.cos(low), 0.0, -np.sin(low)])
    out["RPA"] = radius * np.array([np.cos(low), 0.0, -np.sin(low)])
    out["A1"], out["A2"] = out["LPA"].copy(), out["RPA"].copy()
    return out


# EGI Geodesic Sensor Nets (HydroCel): measured template positions shipped as data
_EGI_NETS = {"gsn-hydrocel-129": "GSN-HydroCel-129", "gsn-hydrocel-256": "GSN-HydroCel-256"}
# the 129-channel net's vertex reference (channel 129, "VREF" in EGI files) sits at Cz
_EGI_ALIASES = {"GSN-HydroCel-129": {"E129": "Cz", "VREF": "Cz"}, "GSN-HydroCel-256": {}}


@cache
def _egi_table(net: str) -> tuple[tuple[str, ...], np.ndarray, dict[str, np.ndarray]]:
    """Electrode names, positions (n, 3) and fiducials of a shipped EGI net table (m)."""
    text = resources.files("exgsrc.io").joinpath("data", f"{net}.tsv").read_text()
    rows = [ln.split("\t") for ln in text.splitlines() if ln and not ln.startswith("#")]
    header, rows = rows[0], rows[1:]
    if header != ["name", "kind", "x", "y", "z"]:  # pragma: no cover - shipped file
        raise RuntimeError(f"exgsrc/io/data/{net}.tsv: unexpected header {header}")
    names = tuple(r[0] for r in rows if r[1] == "eeg")
    pos = np.array([[float(v) for v in r[2:]] for r in rows if r[1] == "eeg"])
    pos.setflags(write=False)
    fid = {r[0]: np.array([float(v) for v in r[2:]]) for r in rows if r[1] == "fiducial"}
    return names, pos, fid


def standard_montage(name: str, ch_names=None, radius: float | None = None) -> Montage:
    """A standard montage: 10-20/10-10/10-05 on a sphere, or an EGI HydroCel net.

    Parameters
    ----------
    name : str
        ``"standard_1020"``, ``"standard_1010"`` or ``"standard_1005"``
        (computed on a sphere, see the module docstring), or
        ``"GSN-HydroCel-129"`` / ``"GSN-HydroCel-256"`` (EGI's template
        positions of the high-density nets, including the cheek and neck
        electrodes; shipped with exgsrc, generated once from MNE-Python's
        montage files by ``tools/make_hydrocel_positions.py``). Net names are
        matched case-insensitively.
    ch_names : sequence of str | None
        Channels wanted (matched case-insensitively, returned with the given
        spelling). Channels not in the montage are listed in ``meta["missing"]``
        and left out. ``None``: every site of the system, every electrode of
        the net (``E1``... and, for the 129 net, the vertex reference ``Cz``,
        also found as ``E129`` or ``VREF``).
    radius : float | None
        Sphere radius (m) of the 10-X systems (default 0.095). Not accepted
        for the EGI nets, whose positions are measured, not computed.

    Returns
    -------
    Montage
        Positions (n_channels, 3) in metres, ``coord_frame="head"``: RAS
        (x right, y anterior, z up). For the EGI nets this is the
        fiducial-defined head frame of MNE-Python and BIDS CapTrak (x through
        RPA, y through the nasion, origin on the LPA-RPA line), so the points
        below the fiducial plane (face, neck) have ``z < 0``. Fiducials
        ``Nz``, ``LPA``, ``RPA`` ((3,) m each) in ``meta["fiducials"]``.
    """
    net = _EGI_NETS.get(str(name).strip().lower())
    if net is not None:
        if radius is not None:
            raise ValueError(
                f"radius applies to the spherical 10-X systems only, not to {net} "
                "(measured template positions)"
            )
        names, pos, fid = _egi_table(net)
        table = dict(zip(names, pos, strict=True))
        aliases = _EGI_ALIASES[net]
        source = net
    else:
        radius = 0.095 if radius is None else radius
        table = standard_positions(name, radius)
        fid = {k: table[k] for k in ("Nz", "LPA", "RPA")}
        names = [k for k in table if k not in ("LPA", "RPA")]
        aliases = {}
        source = name
    fid = {k: np.array(v, float) for k, v in fid.items()}
    if ch_names is None:
        pos = np.array([table[k] for k in names])
        return Montage(
            tuple(names), pos, "head", {"source": source, "fiducials": fid, "missing": []}
        )
    lut = {k.lower(): k for k in table}
    lut.update({a.lower(): b for a, b in aliases.items()})
    names, pos, missing = [], [], []
    for n in ch_names:
        k = lut.get(n.strip().lower())
        if k is None:
            missing.append(n)
            continue
        names.append(n)
        pos.append(table[k])
    warnings = [f"{source}: no standard position for channels {missing}"] if missing else []
    return Montage(
        tuple(names),
        np.asarray(pos, float).reshape(-1, 3),
        "head",
        {"source": source, "fiducials": fid, "missing": missing, "warnings": warnings},
    )


# ----------------------------------------------------------------------------------
# BIDS electrodes.tsv / coordsystem.json
# ----------------------------------------------------------------------------------


def fit_sphere_radius(pos: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares sphere through points.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)

    Returns
    -------
    radius : float
    center : ndarray, shape (3,)
        Falls back to the median distance from the origin for fewer than 4 points or
        a degenerate fit.
    """
    pos = np.asarray(pos, dtype=float)
    if pos.shape[0] >= 4:
        a = np.column_stack([2 * pos, np.ones(pos.shape[0])])
        b = np.sum(pos**2, axis=1)
        sol, *_ = np.linalg.lstsq(a, b, rcond=None)
        c = sol[:3]
        r2 = sol[3] + c @ c
        if r2 > 0 and np.isfinite(r2):
            r = float(np.sqrt(r2))
            med = float(np.median(np.linalg.norm(pos, axis=1)))
            if 0.2 * med < r < 5 * med:
                return r, c
    return float(np.median(np.linalg.norm(pos, axis=1))), np.zeros(3)


_PLAUSIBLE = (0.04, 0.2)  # head radius range, metres


def _check_units(
    pos_m: np.ndarray, unit: str, path: Path, fix: bool, warnings: list
) -> tuple[np.ndarray, float]:
    """Positions (m) plausible for a head, and the rescaling factor applied (1 if none)."""
    if pos_m.shape[0] < 3:
        return pos_m, 1.0
    r, _ = fit_sphere_radius(pos_m)
    lo, hi = _PLAUSIBLE
    if lo <= r <= hi:
        return pos_m, 1.0
    # which declared unit would make it plausible?
    guess = None
    for cand, fac in (("m", 1.0), ("cm", 1e-2), ("mm", 1e-3)):
        rr = r / length_scale(unit, path) * fac
        if lo <= rr <= hi:
            guess, gfac = cand, fac / length_scale(unit, path)
            break
    msg = (
        f"{path}: electrode positions span a sphere of radius {r:.4g} m when read as "
        f"{unit!r} (declared in the coordsystem JSON); a head is 0.04-0.2 m"
    )
    if guess is not None:
        msg += f"; the values look like {guess!r}"
    if fix and guess is not None:
        warnings.append(msg + f" -> rescaled as {guess!r}")
        return pos_m * gfac, gfac
    raise BidsError(msg)


def read_electrodes(
    electrodes_tsv: str | Path,
    coordsystem_json: str | Path | None = None,
    fix_units: bool = False,
) -> Montage:
    """Read a BIDS ``electrodes.tsv`` (+ ``coordsystem.json``) into a :class:`Montage`.

    Parameters
    ----------
    electrodes_tsv : path-like
        Columns ``name``, ``x``, ``y``, ``z``; ``n/a`` rows are reported in
        ``meta["missing"]``.
    coordsystem_json : path-like | None
        ``EEGCoordinateUnits`` (m, cm, mm), ``EEGCoordinateSystem`` and
        ``AnatomicalLandmarkCoordinates`` (with their own
        ``...CoordinateSystem`` and ``...CoordinateUnits``); when None,
        metres are assumed with a recorded warning, and the frame is unknown.
    fix_units : bool
        If the positions are implausible for a head in the declared unit (e.g. a
        ~95 mm cloud declared as m) but plausible in another, rescale and record a
        warning instead of raising (landmarks declared in the same unit too).

    Returns
    -------
    Montage
        Positions in metres in the RAS head frame, converted from the declared
        frame by :func:`exgsrc.io.coords.to_ras_head` (CapTrak positions are
        returned unchanged). ``coord_frame`` says how; ``meta`` holds
        ``coord_frame_original``, ``coord_transform`` (4, 4) and the converted
        ``fiducials`` (all landmarks, names as given).

    Raises
    ------
    BidsError
        Missing/malformed files, unknown units, duplicate names, implausible scale.
    """
    path = Path(electrodes_tsv)
    cols = read_tsv(path, required=("name", "x", "y", "z"))
    warnings: list[str] = []
    unit, frame, fid, lm_frame, lm_unit, where = "m", None, {}, None, None, path
    if coordsystem_json is not None:
        cs_path = where = Path(coordsystem_json)
        cs = read_json(cs_path)
        unit = cs.get("EEGCoordinateUnits")
        if unit is None:
            raise BidsError(f"{cs_path}: required key 'EEGCoordinateUnits' missing")
        frame = cs.get("EEGCoordinateSystem")
        scale = length_scale(unit, cs_path)
        lm = cs.get("AnatomicalLandmarkCoordinates") or {}
        lm_unit = cs.get("AnatomicalLandmarkCoordinateUnits", unit)
        lm_frame = cs.get("AnatomicalLandmarkCoordinateSystem")
        try:
            lm_scale = length_scale(lm_unit, cs_path)
            fid = {k: np.asarray(v, dtype=float).reshape(3) * lm_scale for k, v in lm.items()}
        except (BidsError, TypeError, ValueError):
            warnings.append(f"{cs_path}: could not read AnatomicalLandmarkCoordinates")
            fid = {}
    else:
        warnings.append(f"{path}: no coordsystem JSON found; assuming positions in metres")
        scale = 1.0
    names = cols["name"]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BidsError(f"{path}: duplicate electrode names {dup}")
    keep, pos, missing = [], [], []
    for i, n in enumerate(names):
        xyz = [tsv_float(cols[c][i], path, c, i + 2) for c in ("x", "y", "z")]
        if not np.all(np.isfinite(xyz)):
            missing.append(n)
            continue
        keep.append(n)
        pos.append(xyz)
    pos_m = np.asarray(pos, dtype=float).reshape(-1, 3) * scale
    pos_m, rescale = _check_units(pos_m, unit, path, fix_units, warnings)
    if rescale != 1.0 and lm_unit == unit:
        fid = {k: v * rescale for k, v in fid.items()}
    if missing:
        warnings.append(f"{path}: no position for {missing}")
    if not keep:
        raise BidsError(f"{path}: no electrode has a position")
    conv = to_ras_head(pos_m, frame, fid, lm_frame, source=str(where))
    return Montage(
        tuple(keep),
        conv.pos,
        conv.frame,
        {
            "source": str(path),
            "fiducials": conv.fiducials,
            "missing": missing,
            "warnings": warnings + conv.warnings,
            "units_declared": unit,
            "coord_frame_original": conv.original,
            "coord_transform": conv.trans,
        },
    )
