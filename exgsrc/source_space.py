"""Source spaces: where the candidate dipoles sit.

All positions are in metres, in the head coordinate frame of the electrodes.

Three constructors are provided:

* :func:`ico_source_space` -- vertices of a recursively subdivided icosahedron
  projected on a sphere (a closed surface with outward normals and triangles).
  Grade ``g`` has ``10 * 4**g + 2`` vertices and ``20 * 4**g`` triangles. The
  subdivision splits each triangle into four; the new vertices sit on the
  edge midpoints, de-duplicated over shared edges with :func:`numpy.unique`, so
  no Python loop runs over triangles or vertices.
* :func:`grid_source_space` -- a regular cubic grid inside a sphere (free
  orientation, ``kind="volume"``), optionally with a hole around the centre.
* :func:`discrete_source_space` -- arbitrary positions and normals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SourceSpace",
    "ico_n_vertices",
    "ico_source_space",
    "grid_source_space",
    "discrete_source_space",
]

_KINDS = ("surface", "volume", "discrete")


@dataclass(frozen=True)
class SourceSpace:
    """A set of candidate dipole locations.

    Parameters
    ----------
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.
    nn : ndarray, shape (n_sources, 3)
        Unit normals (the fixed-orientation direction of each source). For
        volume grids, where no surface normal exists, ``nn`` is ``(0, 0, 1)``
        and ``kind == "volume"``.
    tris : ndarray of int, shape (n_tris, 3) | None
        Triangles of a surface source space (indices into ``pos``), ordered
        counter-clockwise seen from outside.
    kind : {"surface", "volume", "discrete"}
        What the source space represents. Only ``"surface"`` and
        ``"discrete"`` spaces carry meaningful normals.
    meta : dict
        Free-form, JSON-serialisable provenance (e.g. ``grade``, ``radius``).
    """

    pos: np.ndarray
    nn: np.ndarray
    tris: np.ndarray | None = None
    kind: str = "surface"
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        pos = np.asarray(self.pos, float)
        nn = np.asarray(self.nn, float)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"SourceSpace pos must have shape (n_sources, 3), got {pos.shape}")
        if nn.shape != pos.shape:
            raise ValueError(f"SourceSpace nn must have shape {pos.shape}, got {nn.shape}")
        if self.kind not in _KINDS:
            raise ValueError(f"SourceSpace kind must be one of {_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "pos", pos)
        object.__setattr__(self, "nn", nn)
        if self.tris is not None:
            tris = np.asarray(self.tris)
            if tris.ndim != 2 or tris.shape[1] != 3:
                raise ValueError(f"SourceSpace tris must have shape (n_tris, 3), got {tris.shape}")
            object.__setattr__(self, "tris", tris)

    @property
    def n_sources(self) -> int:
        """Number of sources."""
        return int(self.pos.shape[0])

    def to_xarray(self):
        """Convert to an :class:`xarray.Dataset`.

        Returns
        -------
        ds : xarray.Dataset
            Variables ``pos`` and ``nn`` with dims ``(source, xyz)`` (m and
            dimensionless), coordinates ``x``, ``y``, ``z`` (m) on ``source``,
            optional ``tris`` with dims ``(tri, corner)``; attrs ``kind`` and
            ``meta`` (JSON text).
        """
        import xarray as xr

        pos = np.asarray(self.pos, float)
        data_vars = {
            "pos": (
                ("source", "xyz"),
                pos,
                {"units": "m", "long_name": "source position"},
            ),
            "nn": (
                ("source", "xyz"),
                np.asarray(self.nn, float),
                {"units": "1", "long_name": "source orientation (unit normal)"},
            ),
        }
        if self.tris is not None:
            data_vars["tris"] = (
                ("tri", "corner"),
                np.asarray(self.tris, np.int64),
                {"units": "1", "long_name": "triangle vertex indices"},
            )
        coords = {
            "source": np.arange(self.n_sources),
            "xyz": ["x", "y", "z"],
            "x": ("source", pos[:, 0], {"units": "m", "long_name": "source x"}),
            "y": ("source", pos[:, 1], {"units": "m", "long_name": "source y"}),
            "z": ("source", pos[:, 2], {"units": "m", "long_name": "source z"}),
        }
        attrs = {"kind": self.kind, "meta": json.dumps(self.meta, default=_json_default)}
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds) -> SourceSpace:
        """Rebuild a :class:`SourceSpace` from :meth:`to_xarray` output.

        Parameters
        ----------
        ds : xarray.Dataset
            Must hold ``pos`` and ``nn`` with dims ``(source, xyz)``.

        Returns
        -------
        src : SourceSpace
        """
        for name in ("pos", "nn"):
            if name not in ds:
                raise ValueError(f"source-space dataset lacks variable {name!r}")
        pos = np.asarray(ds["pos"].transpose("source", "xyz").values, float)
        nn = np.asarray(ds["nn"].transpose("source", "xyz").values, float)
        tris = None
        if "tris" in ds:
            tris = np.asarray(ds["tris"].values, np.int64)
        meta = ds.attrs.get("meta", "{}")
        meta = json.loads(meta) if isinstance(meta, str) else dict(meta)
        return cls(
            pos=pos, nn=nn, tris=tris, kind=str(ds.attrs.get("kind", "discrete")), meta=meta
        )


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON serialisable")


def _check_grade(grade) -> int:
    if isinstance(grade, bool) or not isinstance(grade, int | np.integer):
        raise ValueError(f"grade must be an integer in 0..6, got {grade!r}")
    if not 0 <= int(grade) <= 6:
        raise ValueError(f"grade must be in 0..6, got {grade}")
    return int(grade)


def _check_center(center) -> np.ndarray:
    c = np.asarray(center, float)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise ValueError(f"center must be 3 finite numbers (m), got {center!r}")
    return c


def _check_positive(value, name) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number (m), got {value!r}")
    return v


def ico_n_vertices(grade: int) -> int:
    """Number of vertices of an icosahedron subdivided ``grade`` times.

    Parameters
    ----------
    grade : int
        Subdivision level, 0..6.

    Returns
    -------
    n : int
        ``10 * 4**grade + 2`` (12, 42, 162, 642, 2562, 10242, 40962).
    """
    return 10 * 4 ** _check_grade(grade) + 2


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """Regular icosahedron on the unit sphere: (12, 3) vertices, (20, 3) tris.

    Oriented with a vertex on +z (the head's vertical axis): the pole, a ring
    of five at ``z = 1/sqrt(5)`` (azimuths 0, 72, ... deg), a ring of five at
    ``z = -1/sqrt(5)`` (azimuths -36, 36, ... deg) and the -z pole; the same
    orientation as the icosahedra of MNE-C/MNE-Python, so subdivided vertex
    sets coincide.
    """
    z = 1.0 / np.sqrt(5.0)
    rho = 2.0 * z
    k = np.arange(5)
    up_az = np.deg2rad(72.0 * k)
    lo_az = np.deg2rad(72.0 * k - 36.0)
    verts = np.concatenate(
        [
            [[0.0, 0.0, 1.0]],
            np.stack([rho * np.cos(up_az), rho * np.sin(up_az), np.full(5, z)], axis=1),
            np.stack([rho * np.cos(lo_az), rho * np.sin(lo_az), np.full(5, -z)], axis=1),
            [[0.0, 0.0, -1.0]],
        ]
    )
    u = 1 + k  # upper ring indices
    u1 = 1 + (k + 1) % 5
    lo = 6 + k  # lower ring: lo[k] sits between u[k-1] and u[k]
    lo1 = 6 + (k + 1) % 5
    tris = np.concatenate(
        [
            np.stack([np.zeros(5, int), u, u1], axis=1),  # top cap
            np.stack([u, lo1, u1], axis=1),  # band, pointing down
            np.stack([lo, lo1, u], axis=1),  # band, pointing up
            np.stack([np.full(5, 11), lo1, lo], axis=1),  # bottom cap
        ]
    ).astype(np.int64)
    return verts, tris


def _subdivide(verts: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle into four, with shared edge midpoints on the sphere."""
    n_v = len(verts)
    # edges (a, b), (b, c), (c, a) of every triangle, shape (3 * n_tris, 2)
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edges_sorted = np.sort(edges, axis=1)
    uniq, inverse = np.unique(edges_sorted, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    mid = verts[uniq[:, 0]] + verts[uniq[:, 1]]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    n_t = len(tris)
    m = n_v + inverse.reshape(3, n_t)  # midpoint index of edge ab, bc, ca
    a, b, c = tris.T
    mab, mbc, mca = m
    new_tris = np.concatenate(
        [
            np.stack([a, mab, mca], axis=1),
            np.stack([b, mbc, mab], axis=1),
            np.stack([c, mca, mbc], axis=1),
            np.stack([mab, mbc, mca], axis=1),
        ]
    )
    return np.concatenate([verts, mid]), new_tris


def ico_source_space(grade: int, radius: float, center=(0.0, 0.0, 0.0)) -> SourceSpace:
    """Vertices of a subdivided icosahedron on a sphere, with outward normals.

    Parameters
    ----------
    grade : int
        Subdivision level 0..6; gives :func:`ico_n_vertices` ``(grade)`` sources.
    radius : float
        Sphere radius in metres (> 0).
    center : array-like, shape (3,)
        Sphere centre in metres.

    Returns
    -------
    src : SourceSpace
        ``kind="surface"``; ``pos (n, 3)`` m, ``nn (n, 3)`` outward unit normals,
        ``tris (20 * 4**grade, 3)`` counter-clockwise seen from outside.
    """
    grade = _check_grade(grade)
    radius = _check_positive(radius, "radius")
    c = _check_center(center)
    verts, tris = _icosahedron()
    for _ in range(grade):  # at most 6 vectorised passes
        verts, tris = _subdivide(verts, tris)
    # orient every triangle outward (normal . centroid > 0)
    p0, p1, p2 = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(p1 - p0, p2 - p0), p0 + p1 + p2) < 0
    tris = tris.copy()
    tris[flip] = tris[flip][:, [0, 2, 1]]
    nn = verts / np.linalg.norm(verts, axis=1, keepdims=True)
    pos = c + radius * nn
    meta = {"grade": grade, "radius": radius, "center": c.tolist()}
    return SourceSpace(pos=pos, nn=nn, tris=tris, kind="surface", meta=meta)


def grid_source_space(
    spacing: float, radius: float, center=(0.0, 0.0, 0.0), exclude: float = 0.0
) -> SourceSpace:
    """Regular cubic grid of sources inside a sphere (free orientation).

    The grid is aligned so that ``center`` is a grid node. A node is kept when
    ``exclude <= |pos - center| <= radius``.

    Parameters
    ----------
    spacing : float
        Grid step in metres (> 0).
    radius : float
        Radius of the sphere to fill, in metres (> 0).
    center : array-like, shape (3,)
        Sphere centre in metres.
    exclude : float
        Nodes closer than this to ``center`` (m) are dropped (>= 0).

    Returns
    -------
    src : SourceSpace
        ``kind="volume"``, ``nn`` all ``(0, 0, 1)``, no triangles.
    """
    spacing = _check_positive(spacing, "spacing")
    radius = _check_positive(radius, "radius")
    c = _check_center(center)
    exclude = float(exclude)
    if not np.isfinite(exclude) or exclude < 0:
        raise ValueError(f"exclude must be a finite number >= 0 (m), got {exclude!r}")
    if exclude >= radius:
        raise ValueError(f"exclude ({exclude} m) must be smaller than radius ({radius} m)")
    n = int(np.floor(radius / spacing + 1e-9))
    ax = np.arange(-n, n + 1) * spacing
    gx, gy, gz = np.meshgrid(ax, ax, ax, indexing="ij")
    rel = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)
    d = np.linalg.norm(rel, axis=1)
    tol = 1e-9 * spacing
    keep = (d <= radius + tol) & (d >= exclude)
    pos = c + rel[keep]
    if len(pos) == 0:
        raise ValueError(f"spacing ({spacing} m) leaves no grid node inside radius {radius} m")
    nn = np.tile([0.0, 0.0, 1.0], (len(pos), 1))
    meta = {"spacing": spacing, "radius": radius, "center": c.tolist(), "exclude": exclude}
    return SourceSpace(pos=pos, nn=nn, tris=None, kind="volume", meta=meta)


def discrete_source_space(pos, nn=None) -> SourceSpace:
    """Source space from arbitrary positions and orientations.

    Parameters
    ----------
    pos : array-like, shape (n_sources, 3)
        Positions in metres (finite).
    nn : array-like, shape (n_sources, 3) | None
        Orientations; normalised to unit length. ``None`` gives ``(0, 0, 1)``.

    Returns
    -------
    src : SourceSpace
        ``kind="discrete"``.
    """
    pos = np.array(pos, float)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape (n_sources, 3), got {pos.shape}")
    if len(pos) == 0:
        raise ValueError("pos holds zero sources")
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise ValueError(f"pos of source {bad[0]} is not finite: {pos[bad[0]]}")
    if nn is None:
        nn = np.tile([0.0, 0.0, 1.0], (len(pos), 1))
    else:
        nn = np.array(nn, float)
        if nn.shape != pos.shape:
            raise ValueError(f"nn must have shape {pos.shape}, got {nn.shape}")
        norm = np.linalg.norm(nn, axis=1)
        bad = np.flatnonzero(~np.isfinite(norm) | (norm == 0))
        if bad.size:
            raise ValueError(f"nn of source {bad[0]} is zero or not finite: {nn[bad[0]]}")
        nn = nn / norm[:, None]
    return SourceSpace(pos=pos, nn=nn, tris=None, kind="discrete", meta={})
