"""Matplotlib figures of the sensor side and the QC numbers (Agg canvas, no pyplot state).

Each function takes plain numpy arrays (SI units: m, V, s) and returns a
:class:`matplotlib.figure.Figure`; :func:`exgsrc.report._html.fig_to_img` embeds
it. The source maps (values on the source surface, seen from the standard views)
are in :mod:`exgsrc.report._figmaps`.

Every figure is sized for the page (:data:`WIDTH` inches at
:data:`exgsrc.report._html.DPI`, about 1 100 px), uses matplotlib's constrained
layout (no overlapping labels) and the font sizes of :data:`STYLE` (10 pt and
more); build them inside :func:`styled`. Labels taken from input files are shown
as text by matplotlib, never interpreted.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from matplotlib.figure import Figure

from ._brain import head_outline

__all__ = [
    "STYLE",
    "WIDTH",
    "fig",
    "fit_sphere",
    "project_sensors",
    "styled",
    "topomap",
    "fig_sensors_sphere",
    "fig_covariance",
    "fig_whitened_gfp",
    "fig_distributions",
    "fig_evoked_full",
]

#: width of a full-width figure (inches); at 100 dpi about the page's 1 100 px
WIDTH = 11.0

#: matplotlib settings of every report figure: readable sizes (>= 10 pt at display size)
STYLE = {
    "font.size": 11.0,
    "axes.titlesize": 12.0,
    "axes.labelsize": 11.0,
    "xtick.labelsize": 10.0,
    "ytick.labelsize": 10.0,
    "legend.fontsize": 10.0,
    "figure.titlesize": 13.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlepad": 6.0,
    "savefig.facecolor": "white",
}


@contextmanager
def styled():
    """Context in which report figures are built and saved (:data:`STYLE`).

    Tick labels are created when a figure is drawn, so saving must happen inside too.

    Yields
    ------
    None
    """
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        yield


def fig(size, **kwargs) -> Figure:
    """A Figure of ``size`` inches with constrained layout (nothing overlaps, nothing cut).

    Parameters
    ----------
    size : tuple of float
        (width, height) in inches.
    **kwargs
        More :class:`matplotlib.figure.Figure` arguments.

    Returns
    -------
    matplotlib.figure.Figure
    """
    f = Figure(figsize=size, layout="constrained", **kwargs)
    f.get_layout_engine().set(w_pad=0.06, h_pad=0.06, hspace=0.04, wspace=0.03)
    return f


def fit_sphere(pos: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
        Points (m), n >= 4, not coplanar.

    Returns
    -------
    center : ndarray, shape (3,)
        Centre (m).
    radius : float
        Radius (m).
    """
    pos = np.asarray(pos, float)
    # |p|^2 = 2 c.p + (r^2 - |c|^2): linear in (c, k)
    a = np.column_stack([2 * pos, np.ones(len(pos))])
    b = np.sum(pos**2, axis=1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    center = sol[:3]
    radius = float(np.sqrt(sol[3] + center @ center))
    return center, radius


def project_sensors(pos: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Azimuthal equidistant projection of electrodes seen from above.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
        Electrode positions (m).
    center : ndarray, shape (3,)
        Sphere centre (m).

    Returns
    -------
    xy : ndarray, shape (n, 2)
        Projected positions; the vertex is at 0 and the equator (90 deg from
        the vertex) at radius ``pi / 2``.
    """
    rel = np.asarray(pos, float) - np.asarray(center, float)
    r = np.linalg.norm(rel, axis=1)
    r[r == 0] = 1.0
    theta = np.arccos(np.clip(rel[:, 2] / r, -1, 1))
    phi = np.arctan2(rel[:, 1], rel[:, 0])
    return np.column_stack([theta * np.cos(phi), theta * np.sin(phi)])


def _spatial_axes(ax, i, j):
    """Equal-aspect view in mm with labelled axes (right, anterior, up)."""
    ax.set_aspect("equal")
    names = ("x: left → right (mm)", "y: back → front (mm)", "z: down → up (mm)")
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])


def topomap(ax, xy, values, *, cmap="RdBu_r", vlim=None, title=None):
    """Scalp map seen from above (nose up, left on the left) with the electrodes as dots.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    xy : ndarray, shape (n, 2)
        :func:`project_sensors` positions.
    values : ndarray, shape (n,)
    cmap : str
    vlim : tuple of float | None
        Colour limits; None: symmetric for ``RdBu_r``, else the range.
    title : str | None

    Returns
    -------
    matplotlib.collections.PathCollection
        The electrodes, a mappable for the colour bar.
    """
    import matplotlib.tri as mtri

    values = np.asarray(values, float)
    if vlim is None:
        m = np.nanmax(np.abs(values)) if values.size else 1.0
        vlim = (-m, m) if cmap == "RdBu_r" else (np.nanmin(values), np.nanmax(values))
    if vlim[0] == vlim[1]:
        vlim = (vlim[0] - 1, vlim[1] + 1)
    if len(xy) >= 3:
        try:
            tri = mtri.Triangulation(xy[:, 0], xy[:, 1])
            ax.tricontourf(
                tri, values, levels=np.linspace(vlim[0], vlim[1], 13), cmap=cmap, extend="both"
            )
        except (ValueError, RuntimeError):  # degenerate layout: dots only
            pass
    sc = ax.scatter(
        xy[:, 0],
        xy[:, 1],
        c=values,
        cmap=cmap,
        vmin=vlim[0],
        vmax=vlim[1],
        s=9,
        edgecolors="k",
        linewidths=0.4,
    )
    rmax = max(np.pi / 2, float(np.max(np.hypot(xy[:, 0], xy[:, 1]))) if len(xy) else 1.0)
    head_outline(ax, "top", rmax)
    lim = 1.2 * rmax
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return sc


def fig_sensors_sphere(pos, center, radii) -> Figure:
    """Electrodes on the head spheres, top (x-y) and side (y-z) views.

    Parameters
    ----------
    pos : ndarray, shape (n_ch, 3)
        Electrode positions (m).
    center : ndarray, shape (3,)
        Sphere centre (m).
    radii : sequence of float
        Shell radii (m), any order.

    Returns
    -------
    matplotlib.figure.Figure
    """
    pos = np.asarray(pos, float) * 1e3
    c = np.asarray(center, float) * 1e3
    f = fig((WIDTH, 4.6))
    axes = f.subplots(1, 2)
    t = np.linspace(0, 2 * np.pi, 200)
    dist = np.linalg.norm(pos - c, axis=1)
    views = [(0, 1, "top (nose up)"), (1, 2, "side, from the right (nose right)")]
    for ax, (i, j, title) in zip(axes, views, strict=True):
        for r in sorted(radii):
            r = r * 1e3
            ax.plot(c[i] + r * np.cos(t), c[j] + r * np.sin(t), color="0.6", lw=0.8)
        sc = ax.scatter(
            pos[:, i],
            pos[:, j],
            c=dist - max(radii) * 1e3,
            cmap="coolwarm",
            s=22,
            edgecolors="k",
            linewidths=0.3,
        )
        ax.plot(c[i], c[j], "k+")
        _spatial_axes(ax, i, j)
        ax.set_title(title)
    cb = f.colorbar(sc, ax=list(axes), shrink=0.85)
    cb.set_label("distance from the scalp sphere (mm)")
    return f


def fig_covariance(cov, eigvals, rank) -> Figure:
    """Covariance matrix image (µV²) and eigenvalue spectrum with the rank marked.

    Parameters
    ----------
    cov : ndarray, shape (n_ch, n_ch)
        Covariance (V²).
    eigvals : ndarray, shape (n_ch,)
        Eigenvalues (V²), descending.
    rank : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    f = fig((WIDTH, 4.2))
    ax0, ax1 = f.subplots(1, 2)
    c = np.asarray(cov) * 1e12
    m = float(np.max(np.abs(c))) or 1.0
    im = ax0.imshow(c, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    f.colorbar(im, ax=ax0, shrink=0.9).set_label("covariance (µV²)")
    ax0.set_title("noise covariance")
    ax0.set_xlabel("channel")
    ax0.set_ylabel("channel")
    ev = np.asarray(eigvals, float) * 1e12
    idx = np.arange(1, len(ev) + 1)
    ok = ev > 0
    ax1.semilogy(idx[ok], ev[ok], ".-", color="0.2")
    ax1.axvline(rank + 0.5, color="r", ls="--", label=f"rank = {rank}")
    ax1.set_xlabel("eigenvalue index")
    ax1.set_ylabel("eigenvalue (µV²)")
    ax1.legend()
    ax1.set_title("eigenvalue spectrum")
    return f


def fig_whitened_gfp(curves: dict, base=None, limits=None) -> Figure:
    """Whitened global field power per condition (about 1 in the baseline where right).

    Parameters
    ----------
    curves : dict of str -> (times ndarray (n_times,) s, gfp ndarray (n_times,))
        Whitened GFP (chi² per degree of freedom, dimensionless).
    base : tuple of float | None
        Baseline window (s), shaded.
    limits : tuple of float | None
        (low, high) flag limits of the baseline mean, drawn as dotted lines.

    Returns
    -------
    matplotlib.figure.Figure
    """
    f = fig((WIDTH, 3.6))
    ax = f.add_subplot()
    for label, (t, g) in curves.items():
        ax.plot(np.asarray(t) * 1e3, g, lw=1.2, label=str(label))
    ax.axhline(1.0, color="k", ls="--", lw=0.9, label="noise only (1)")
    if limits is not None:
        for k, lim in enumerate(limits):
            if lim is not None:
                ax.axhline(lim, color="r", ls=":", lw=1.2, label="flag limits" if k == 0 else None)
    if base is not None:
        ax.axvspan(base[0] * 1e3, base[1] * 1e3, color="0.88", zorder=0, label="baseline")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("whitened GFP (χ²/rank)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return f


def fig_distributions(data: dict, metric_titles: dict, units: dict) -> Figure:
    """Box plots of resolution metrics per method.

    Parameters
    ----------
    data : dict of metric -> dict of method -> ndarray (n_src,)
    metric_titles : dict of metric -> str
    units : dict of metric -> str

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = list(data)
    ncol = 3
    nrow = int(np.ceil(len(metrics) / ncol))
    f = fig((WIDTH, 3.1 * nrow))
    axes = f.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, m in zip(axes, metrics, strict=False):
        methods = list(data[m])
        vals = [np.asarray(data[m][k], float) for k in methods]
        vals = [v[np.isfinite(v)] for v in vals]
        ax.boxplot(vals, showfliers=False)
        ax.set_xticks(np.arange(1, len(methods) + 1), [str(k) for k in methods])
        ax.set_title(metric_titles.get(m, m))
        ax.set_ylabel(units.get(m, "") or "ratio")
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    return f


def fig_evoked_full(
    times, data, gfp, peak_idx, pos, center, condition="", window=None, baseline=None
) -> Figure:
    """Butterfly (µV), GFP and topographies at the GFP peaks in one figure.

    Parameters
    ----------
    times : ndarray, shape (n_times,)
        Seconds.
    data : ndarray, shape (n_ch, n_times)
        Volts.
    gfp : ndarray, shape (n_times,)
        Volts.
    peak_idx : sequence of int
        Time indices of the topographies.
    pos : ndarray, shape (n_ch, 3)
        Electrode positions (m), same order as ``data``.
    center : ndarray, shape (3,)
        Head centre (m).
    condition : str
    window : tuple of float | None
        Response window (s) in which the peaks were searched, shaded.
    baseline : tuple of float | None
        Baseline (s), shaded grey.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = np.asarray(times) * 1e3
    x = np.asarray(data) * 1e6
    n_pk = max(len(peak_idx), 1)
    f = fig((WIDTH, 4.6))
    gs = f.add_gridspec(2, 1 + n_pk, width_ratios=[2.6] + [1] * n_pk, height_ratios=[2, 1])
    ax0 = f.add_subplot(gs[0, 0])
    ax1 = f.add_subplot(gs[1, 0], sharex=ax0)
    ax0.plot(t, x.T, lw=0.5, color="k", alpha=0.5)
    ax0.set_ylabel("potential (µV)")
    ax0.set_title(f"{condition}: every channel" if condition else "every channel")
    ax0.tick_params(labelbottom=False)
    ax1.fill_between(t, 0, np.asarray(gfp) * 1e6, color="0.45", lw=0)
    ax1.set_ylabel("GFP (µV)")
    ax1.set_xlabel("time (ms)")
    for ax in (ax0, ax1):
        if baseline is not None:
            ax.axvspan(baseline[0] * 1e3, baseline[1] * 1e3, color="0.9", zorder=0, lw=0)
        if window is not None:
            ax.axvspan(window[0] * 1e3, window[1] * 1e3, color="#fff1c9", zorder=0, lw=0)
        for k in peak_idx:
            ax.axvline(t[k], color="r", lw=1.0, ls=":")
    xy = project_sensors(pos, center)
    m = float(np.max(np.abs(x[:, list(peak_idx)]))) if len(peak_idx) else 1.0
    im, maps = None, []
    for j, k in enumerate(peak_idx):
        ax = f.add_subplot(gs[:, 1 + j])
        im = topomap(ax, xy, x[:, k], vlim=(-m, m), title=f"{t[k]:.0f} ms")
        maps.append(ax)
    if im is not None:
        cb = f.colorbar(im, ax=maps, shrink=0.6, location="bottom", aspect=30)
        cb.set_label("potential (µV)")
    return f
