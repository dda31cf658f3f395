"""Source maps as a brain researcher reads them: values on the shaded source surface.

The head is drawn from the standard views (``left``, ``right``, ``top``, ``back``,
also ``front``) in an orthographic projection, with the scalp outline, the nose,
the ears and L/R labels. A surface source space (the ico shell, with its
triangles ``tris``) is drawn as the visible hemisphere's triangles in painter's
order (far to near), each vertex coloured by its value and shaded by a light
from the viewer (Gouraud interpolation); a source space without triangles (a
volume grid, discrete points) as a maximum-intensity projection, a "glass brain".

Coordinates are the RAS head frame of the workflow (x right, y anterior, z up),
in m. Everything here draws into matplotlib Axes and returns plain objects; the
figures that use it are in :mod:`exgsrc.report._figures`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist
from matplotlib.colors import LinearSegmentedColormap, Normalize

__all__ = [
    "VIEWS",
    "activation_cmap",
    "BrainView",
    "draw_brain",
    "head_outline",
    "mark",
    "move_mark",
    "project",
]

#: view -> (screen right, screen up, towards the viewer), unit vectors of the head frame
VIEWS = {
    "left": ((0, -1, 0), (0, 0, 1), (-1, 0, 0)),
    "right": ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
    "top": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "back": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    "front": ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
}

#: the colour of the surface below the activation threshold
BRAIN_GREY = (0.80, 0.80, 0.80)


def activation_cmap(threshold: float = 0.5) -> LinearSegmentedColormap:
    """Grey up to ``threshold`` (fraction of the scale), then dark red -> red -> yellow.

    Parameters
    ----------
    threshold : float
        Fraction of the colour scale below which the surface stays grey (as MNE's
        ``fmin``), so the active region stands out.

    Returns
    -------
    matplotlib.colors.LinearSegmentedColormap
    """
    t = float(np.clip(threshold, 0.0, 0.95))
    g = BRAIN_GREY
    stops = [
        (0.0, g),
        (t, g),
        (t + 1e-3, (0.55, 0.0, 0.0)),
        (t + 0.45 * (1 - t), (0.95, 0.15, 0.0)),
        (t + 0.8 * (1 - t), (1.0, 0.65, 0.0)),
        (1.0, (1.0, 0.95, 0.35)),
    ]
    return LinearSegmentedColormap.from_list("exgsrc_activation", stops, N=256)


def project(pos, view: str, center):
    """Screen coordinates and depth of points seen from ``view``.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
        Points (m), head frame.
    view : str
        One of :data:`VIEWS`.
    center : ndarray, shape (3,)
        Head centre (m): the origin of the screen.

    Returns
    -------
    xy : ndarray, shape (n, 2)
        Screen position (mm).
    depth : ndarray, shape (n,)
        Distance towards the viewer from the centre (mm).
    """
    r, u, t = (np.asarray(a, float) for a in VIEWS[view])
    rel = (np.atleast_2d(np.asarray(pos, float)) - np.asarray(center, float)) * 1e3
    return np.column_stack([rel @ r, rel @ u]), rel @ t


class _Gouraud(Artist):
    """Triangles with one colour per corner, interpolated (Agg's Gouraud shading)."""

    def __init__(self, tri_xy, tri_rgba, zorder=2):
        super().__init__()
        self.set_zorder(zorder)
        self.tri_xy = np.ascontiguousarray(tri_xy, float)
        self.tri_rgba = np.ascontiguousarray(tri_rgba, float)

    def draw(self, renderer):
        if not self.get_visible() or not len(self.tri_xy):
            return
        gc = renderer.new_gc()
        self._set_gc_clip(gc)
        renderer.draw_gouraud_triangles(gc, self.tri_xy, self.tri_rgba, self.axes.transData)
        gc.restore()
        self.stale = False


def _subdivide(pos, tris, center):
    """Split every triangle in four; new vertices on the shell through the edges' midpoints.

    Returns
    -------
    pos : ndarray, shape (n + n_edges, 3)
    tris : ndarray, shape (4 n_tris, 3)
    edges : ndarray, shape (n_edges, 2)
        The two original vertices of each new vertex (values are their mean).
    """
    n = len(pos)
    e = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    edges, inv = np.unique(e, axis=0, return_inverse=True)
    inv = inv.ravel()
    nt = len(tris)
    ab, bc, ca = inv[:nt] + n, inv[nt : 2 * nt] + n, inv[2 * nt :] + n
    mid = 0.5 * (pos[edges[:, 0]] + pos[edges[:, 1]])
    r_end = 0.5 * (
        np.linalg.norm(pos[edges[:, 0]] - center, axis=1)
        + np.linalg.norm(pos[edges[:, 1]] - center, axis=1)
    )
    rel = mid - center
    r_mid = np.linalg.norm(rel, axis=1, keepdims=True)
    mid = center + rel / np.where(r_mid > 0, r_mid, 1.0) * r_end[:, None]
    a, b, c = tris.T
    new = np.concatenate(
        [
            np.column_stack([a, ab, ca]),
            np.column_stack([ab, b, bc]),
            np.column_stack([ca, bc, c]),
            np.column_stack([ab, bc, ca]),
        ]
    )
    return np.concatenate([pos, mid]), new, edges


def _vertex_normals(pos, tris):
    """Unit normals at the vertices: area-weighted mean of the adjacent triangles' normals."""
    p0, p1, p2 = pos[tris[:, 0]], pos[tris[:, 1]], pos[tris[:, 2]]
    fn = np.cross(p1 - p0, p2 - p0)
    vn = np.zeros_like(pos)
    for k in range(3):
        np.add.at(vn, tris[:, k], fn)
    n = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.where(n > 0, n, 1.0), fn


class BrainView:
    """One view of a source space, ready to be coloured again and again (slider frames).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    pos : ndarray, shape (n_src, 3)
        Source positions (m).
    tris : ndarray of int, shape (n_tris, 3) | None
        Triangles, counter-clockwise seen from outside; None: maximum-intensity
        projection of the points.
    view : str
        One of :data:`VIEWS`.
    center : ndarray, shape (3,)
        Head centre (m).
    radius : float
        Scalp radius (m), for the outline.
    cmap : Colormap
    norm : matplotlib.colors.Normalize
    """

    def __init__(self, ax, pos, tris, view, center, radius, cmap, norm):
        self.ax, self.view, self.cmap, self.norm = ax, view, cmap, norm
        self.center = np.asarray(center, float)
        pos = np.asarray(pos, float)
        xy, depth = project(pos, view, self.center)
        self.xy, self.depth = xy, depth
        r_head = float(radius) * 1e3
        self.r_src = float(np.max(np.linalg.norm((pos - self.center) * 1e3, axis=1)))
        self.artist = self.image = None
        self._up = None
        if tris is not None and len(tris):
            tris = np.asarray(tris, int)
            if len(tris) < 6000:  # one subdivision: sharper threshold edges, smoother light
                pos, tris, self._up = _subdivide(pos, tris, self.center)
                xy, depth = project(pos, view, self.center)
            t = np.asarray(VIEWS[view][2], float)
            vn, fn = _vertex_normals(pos, tris)
            facing = fn @ t > 0
            order = np.argsort(depth[tris[facing]].mean(axis=1))  # far first
            self.tris = tris[facing][order]
            light = t + 0.35 * np.asarray(VIEWS[view][1], float) - 0.2 * np.asarray(VIEWS[view][0])
            light /= np.linalg.norm(light)
            self.shade = 0.5 + 0.5 * np.clip(vn @ light, 0.0, 1.0)
            self.artist = _Gouraud(xy[self.tris], np.zeros((len(self.tris), 3, 4)), zorder=2)
            ax.add_artist(self.artist)
        else:
            self.tris = None
            self._grid_setup(xy)
        head_outline(ax, view, r_head)
        lim = 1.16 * r_head
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_axis_off()

    def _grid_setup(self, xy):
        """Pixel grid of the projection: the spacing of as many points filling the ball.

        For a regular grid in a ball this is the grid's spacing; for scattered
        points it is coarse enough that the projection has no holes.
        """
        step = max(self.r_src * (4 * np.pi / (3 * max(len(xy), 1))) ** (1 / 3), 1e-3)
        lo = xy.min(axis=0) - step
        n = np.ceil((xy.max(axis=0) + step - lo) / step).astype(int) + 1
        self._pix = np.floor((xy - lo) / step).astype(int)
        self._shape = (int(n[1]), int(n[0]))
        self._extent = (lo[0], lo[0] + n[0] * step, lo[1], lo[1] + n[1] * step)

    def set_values(self, values):
        """Colour the sources by ``values`` (n_src,), on the view's colour scale.

        Parameters
        ----------
        values : ndarray, shape (n_src,)
        """
        v = np.asarray(values, float)
        if self._up is not None:
            v = np.concatenate([v, 0.5 * (v[self._up[:, 0]] + v[self._up[:, 1]])])
        if self.tris is not None:
            rgba = np.array(self.cmap(self.norm(np.nan_to_num(v, nan=self.norm.vmin))), float)
            rgba[:, :3] *= self.shade[:, None]
            rgba[~np.isfinite(v)] = (0.9, 0.9, 0.9, 1.0)
            self.artist.tri_rgba = rgba[self.tris]
            self.artist.stale = True
            return
        img = np.full(self._shape, -np.inf)
        ok = np.isfinite(v)
        np.maximum.at(img, (self._pix[ok, 1], self._pix[ok, 0]), v[ok])
        img[np.isinf(img)] = np.nan
        if self.image is None:
            self.image = self.ax.imshow(
                img,
                origin="lower",
                extent=self._extent,
                cmap=self.cmap,
                norm=self.norm,
                interpolation="nearest",
                zorder=2,
            )
        else:
            self.image.set_data(img)

    def visible(self, pos) -> np.ndarray:
        """Whether points are on the viewer's side of the head (always, for a glass brain).

        Parameters
        ----------
        pos : ndarray, shape (n, 3)

        Returns
        -------
        ndarray of bool, shape (n,)
        """
        _, depth = project(pos, self.view, self.center)
        if self.tris is None:
            return np.ones(len(depth), bool)
        return depth >= -0.1 * self.r_src


def head_outline(ax, view, r):
    """Draw the scalp circle, nose, ears and L/R letters of a view, centred at 0.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    view : str
        One of :data:`VIEWS`.
    r : float
        Scalp radius in the axes' units.
    """
    kw = dict(color="0.25", lw=1.2, zorder=1, solid_capstyle="round")
    a = np.linspace(0, 2 * np.pi, 181)
    ax.plot(r * np.cos(a), r * np.sin(a), **kw)
    nose = {"top": 90.0, "left": 180.0 - 8, "right": 8.0}.get(view)
    if nose is not None:
        c, w = np.deg2rad(nose), np.deg2rad(9)
        ax.plot(
            [r * np.cos(c - w), 1.13 * r * np.cos(c), r * np.cos(c + w)],
            [r * np.sin(c - w), 1.13 * r * np.sin(c), r * np.sin(c + w)],
            **kw,
        )
    ears = {"top": (0.0, 180.0), "back": (0.0, 180.0), "front": (0.0, 180.0)}.get(view, ())
    for e in ears:
        c = np.deg2rad(e)
        b = np.linspace(-0.55, 0.55, 20)
        bulge = r * (1 + 0.06 * np.cos(b / 0.55 * np.pi / 2))
        ax.plot(bulge * np.cos(c + b * 0.35), bulge * np.sin(c + b * 0.35), **kw)
    if view in ("top", "back"):
        lr = (("L", -1), ("R", 1))
    elif view == "front":
        lr = (("R", -1), ("L", 1))
    else:
        lr = ()
    for txt, side in lr:
        ax.text(
            side * 1.0 * r,
            -1.0 * r,
            txt,
            ha="center",
            va="center",
            fontsize=12,
            fontweight="bold",
            color="0.2",
        )


def draw_brain(
    ax,
    pos,
    values,
    tris,
    view,
    *,
    center,
    radius,
    cmap,
    norm: Normalize,
    peak=None,
    truth=None,
    others=None,
) -> BrainView:
    """Draw one view of a source map with its markers.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    pos : ndarray, shape (n_src, 3)
        Source positions (m).
    values : ndarray, shape (n_src,)
    tris : ndarray of int, shape (n_tris, 3) | None
        Surface triangles; None: maximum-intensity projection.
    view : str
        One of :data:`VIEWS`.
    center : ndarray, shape (3,)
        Head centre (m).
    radius : float
        Scalp radius (m).
    cmap : Colormap
    norm : Normalize
    peak : ndarray, shape (3,) | None
        Peak position (m): a blue star where it is on the visible side.
    truth : ndarray, shape (n, 3) | None
        True dipole positions (m): black crosses.
    others : ndarray, shape (n, 3) | None
        More positions (m), e.g. each subject's peak: small white dots.

    Returns
    -------
    BrainView
    """
    bv = BrainView(ax, pos, tris, view, center, radius, cmap, norm)
    bv.set_values(values)
    bv.peak_line = mark(bv, peak, "peak")
    mark(bv, truth, "truth")
    mark(bv, others, "other")
    return bv


_MARKS = {
    "peak": dict(marker="*", ms=17, mfc="#1f6fff", mec="white", mew=1.3, ls="none", zorder=9),
    "truth": dict(marker="o", ms=19, mfc="none", mec="black", mew=2.2, ls="none", zorder=7),
    "other": dict(marker="o", ms=6, mfc="white", mec="black", mew=0.9, ls="none", zorder=8),
}

#: several true dipoles (a cohort's): thinner, smaller rings, so the dots show through
_MANY_TRUTHS = dict(ms=12, mew=1.4)


def mark(bv: BrainView, pos, kind: str):
    """Markers at ``pos`` (n, 3) m in a view, where visible; returns the Line2D (or None).

    Parameters
    ----------
    bv : BrainView
    pos : ndarray, shape (n, 3) | (3,) | None
    kind : {"peak", "truth", "other"}

    Returns
    -------
    matplotlib.lines.Line2D | None
    """
    if pos is None:
        return bv.ax.plot([], [], **_MARKS[kind])[0] if kind == "peak" else None
    p = np.atleast_2d(np.asarray(pos, float))
    if not p.size:
        return None
    xy, _ = project(p, bv.view, bv.center)
    vis = bv.visible(p)
    style = dict(_MARKS[kind], **(_MANY_TRUTHS if kind == "truth" and len(p) > 2 else {}))
    return bv.ax.plot(xy[vis, 0], xy[vis, 1], **style)[0]


def move_mark(bv: BrainView, line, pos) -> None:
    """Move a marker made by :func:`mark` to ``pos`` (3,) m (hidden where not visible).

    Parameters
    ----------
    bv : BrainView
    line : matplotlib.lines.Line2D
    pos : ndarray, shape (3,)
    """
    p = np.atleast_2d(np.asarray(pos, float))
    xy, _ = project(p, bv.view, bv.center)
    vis = bv.visible(p)
    line.set_data(xy[vis, 0], xy[vis, 1])
