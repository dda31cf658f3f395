"""Matplotlib figures for the QC reports (Agg canvas, no pyplot global state).

Each function takes plain numpy arrays (SI units: m, V, s) and returns a
:class:`matplotlib.figure.Figure`; :func:`exgsrc.report._html.fig_to_img`
embeds it. Labels taken from input files are shown as text by matplotlib,
never interpreted.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "fit_sphere",
    "project_sensors",
    "fig_sensors_sphere",
    "fig_forward",
    "fig_covariance",
    "fig_whitened_gfp",
    "fig_distributions",
    "fig_grand_average",
    "fig_evoked_full",
    "fig_stc_full",
    "fig_metric_maps_methods",
]


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


def _fig(size) -> Figure:
    """A Figure with fixed margins in inches (cheaper than a tight bounding box)."""
    w, h = size
    fig = Figure(figsize=size)
    fig.subplots_adjust(
        left=min(0.8 / w, 0.3),
        right=1 - 0.2 / w,
        bottom=min(0.75 / h, 0.3),
        top=1 - min(0.45 / h, 0.2),
        wspace=0.3,
        hspace=0.35,
    )
    return fig


def _spatial_axes(ax, i, j):
    """Equal-aspect view without tick labels (ticks are slow to lay out and add little)."""
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("xyz"[i] + " →", fontsize=8)
    ax.set_ylabel("xyz"[j] + " →", fontsize=8)


def _topo(ax, xy, values, *, cmap="RdBu_r", vlim=None, title=None):
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
        s=12,
        edgecolors="k",
        linewidths=0.4,
    )
    head = np.linspace(0, 2 * np.pi, 100)
    rmax = max(np.pi / 2, float(np.max(np.hypot(xy[:, 0], xy[:, 1]))) if len(xy) else 1.0)
    ax.plot(rmax * np.cos(head), rmax * np.sin(head), "k", lw=0.8)
    ax.plot([-0.12 * rmax, 0, 0.12 * rmax], [rmax, 1.12 * rmax, rmax], "k", lw=0.8)  # nose (+y)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return sc  # a plain mappable: its colorbar gets a few readable ticks


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
    """
    pos = np.asarray(pos, float) * 1e3
    c = np.asarray(center, float) * 1e3
    fig = _fig((8, 4))
    axes = fig.subplots(1, 2)
    t = np.linspace(0, 2 * np.pi, 200)
    dist = np.linalg.norm(pos - c, axis=1)
    for ax, (i, j), title in zip(axes, [(0, 1), (1, 2)], ["top (x-y)", "side (y-z)"], strict=True):
        for r in sorted(radii):
            r = r * 1e3
            ax.plot(c[i] + r * np.cos(t), c[j] + r * np.sin(t), color="0.6", lw=0.8)
        sc = ax.scatter(
            pos[:, i],
            pos[:, j],
            c=dist - max(radii) * 1e3,
            cmap="coolwarm",
            s=14,
            edgecolors="k",
            linewidths=0.3,
        )
        ax.plot(c[i], c[j], "k+")
        _spatial_axes(ax, i, j)
        ax.set_title(title, fontsize=10)
    cb = fig.colorbar(sc, ax=list(axes), shrink=0.8)
    cb.set_label("distance from scalp sphere (mm)")
    return fig


def fig_forward(ch_pos, center, ch_norm, src_pos, src_norm) -> Figure:
    """Gain-norm topography, sensitivity map over sources and its distribution.

    Parameters
    ----------
    ch_norm : ndarray, shape (n_ch,)
        Norm of each gain row (V/(A·m)).
    src_norm : ndarray, shape (n_src,)
        Norm of each source's gain columns (V/(A·m)).
    """
    fig = _fig((11, 3.4))
    gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 1])
    ax0 = fig.add_subplot(gs[0])
    im = _topo(
        ax0,
        project_sensors(ch_pos, center),
        ch_norm,
        cmap="viridis",
        title="gain norm per channel",
    )
    fig.colorbar(im, ax=ax0, shrink=0.7).set_label("V/(A·m)")
    p = np.asarray(src_pos) * 1e3
    s = np.asarray(src_norm, float)
    order = np.argsort(s)
    for k, (i, j, lab) in enumerate([(0, 1, "top (x-y)"), (1, 2, "side (y-z)")]):
        ax = fig.add_subplot(gs[1 + k])
        sc = ax.scatter(p[order, i], p[order, j], c=s[order], cmap="magma", s=8)
        _spatial_axes(ax, i, j)
        ax.set_title(f"sensitivity, {lab}", fontsize=9)
    fig.colorbar(sc, ax=ax, shrink=0.7).set_label("V/(A·m)")
    ax3 = fig.add_subplot(gs[3])
    pos_s = s[s > 0]
    if pos_s.size:
        ax3.hist(np.log10(pos_s), bins=30, color="0.4")
    ax3.set_xlabel("log10 source gain norm")
    ax3.set_ylabel("sources")
    ax3.set_title("sensitivity distribution", fontsize=9)
    return fig


def fig_covariance(cov, eigvals, rank) -> Figure:
    """Covariance matrix image (µV²) and eigenvalue spectrum with the rank marked.

    Parameters
    ----------
    cov : ndarray, shape (n_ch, n_ch)
        Covariance (V²).
    eigvals : ndarray, shape (n_ch,)
        Eigenvalues (V²), descending.
    rank : int
    """
    fig = _fig((9, 3.6))
    ax0, ax1 = fig.subplots(1, 2)
    c = np.asarray(cov) * 1e12
    m = float(np.max(np.abs(c))) or 1.0
    im = ax0.imshow(c, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    fig.colorbar(im, ax=ax0, shrink=0.8).set_label("µV²")
    ax0.set_title("noise covariance", fontsize=10)
    ax0.set_xlabel("channel")
    ax0.set_ylabel("channel")
    ev = np.asarray(eigvals, float) * 1e12
    idx = np.arange(1, len(ev) + 1)
    ok = ev > 0
    ax1.semilogy(idx[ok], ev[ok], ".-", color="0.2")
    ax1.axvline(rank + 0.5, color="r", ls="--", label=f"rank = {rank}")
    ax1.set_xlabel("eigenvalue index")
    ax1.set_ylabel("eigenvalue (µV²)")
    ax1.legend(fontsize=8)
    ax1.set_title("eigenvalue spectrum", fontsize=10)
    return fig


def fig_whitened_gfp(
    curves: dict, tmin_base: float | None = None, tmax_base: float | None = None
) -> Figure:
    """Whitened global field power per condition (should be ~1 in the baseline).

    Parameters
    ----------
    curves : dict of str -> (times ndarray (n_times,) s, gfp ndarray (n_times,))
        Whitened GFP (chi² per degree of freedom, dimensionless).
    """
    fig = _fig((7, 3))
    ax = fig.add_subplot()
    for label, (t, g) in curves.items():
        ax.plot(np.asarray(t) * 1e3, g, lw=1, label=str(label))
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    if tmin_base is not None and tmax_base is not None:
        ax.axvspan(tmin_base * 1e3, tmax_base * 1e3, color="0.9", zorder=0, label="baseline")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("whitened GFP (χ²/rank)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def fig_distributions(data: dict, metric_titles: dict, units: dict) -> Figure:
    """Box plots of resolution metrics per method.

    Parameters
    ----------
    data : dict of metric -> dict of method -> ndarray (n_src,)
    metric_titles : dict of metric -> str
    units : dict of metric -> str
    """
    metrics = list(data)
    ncol = 3
    nrow = int(np.ceil(len(metrics) / ncol))
    fig = _fig((11, 2.8 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, m in zip(axes, metrics, strict=False):
        methods = list(data[m])
        vals = [np.asarray(data[m][k], float) for k in methods]
        vals = [v[np.isfinite(v)] for v in vals]
        ax.boxplot(vals, showfliers=False)
        ax.set_xticks(np.arange(1, len(methods) + 1), [str(k) for k in methods], fontsize=8)
        ax.set_title(metric_titles.get(m, m), fontsize=9)
        ax.set_ylabel(units.get(m, ""), fontsize=8)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    fig.subplots_adjust(hspace=0.45, wspace=0.35)
    return fig


def fig_grand_average(times, tc, src_pos, values, *, title="", unit="", mark=None) -> Figure:
    """Grand average: time course at the peak source and top view at peak time."""
    t = np.asarray(times) * 1e3
    p = np.asarray(src_pos) * 1e3
    fig = _fig((9, 3.2))
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1.4, 1])
    ax0.plot(t, tc)
    ax0.set_xlabel("time (ms)")
    ax0.set_ylabel(unit)
    v = np.asarray(values, float)
    order = np.argsort(v)
    sc = ax1.scatter(p[order, 0], p[order, 1], c=v[order], s=8, cmap="viridis")
    if mark is not None:
        ax1.plot(mark[0] * 1e3, mark[1] * 1e3, "*", ms=14, mfc="none", mec="r", mew=1.5)
    _spatial_axes(ax1, 0, 1)
    fig.colorbar(sc, ax=ax1, shrink=0.8).set_label(unit)
    fig.suptitle(title, fontsize=10)
    return fig


def fig_evoked_full(times, data, gfp, peak_idx, pos, center, condition="") -> Figure:
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
    """
    t = np.asarray(times) * 1e3
    x = np.asarray(data) * 1e6
    n_pk = max(len(peak_idx), 1)
    fig = _fig((10, 4.2))
    gs = fig.add_gridspec(2, 1 + n_pk, width_ratios=[3.2] + [1] * n_pk, height_ratios=[2, 1])
    ax0 = fig.add_subplot(gs[0, 0])
    ax1 = fig.add_subplot(gs[1, 0], sharex=ax0)
    ax0.plot(t, x.T, lw=0.5, color="k", alpha=0.5)
    ax0.set_ylabel("µV")
    ax0.set_title(f"butterfly: {condition}", fontsize=10)
    ax0.tick_params(labelbottom=False)
    ax1.fill_between(t, 0, np.asarray(gfp) * 1e6, color="0.5")
    ax1.set_ylabel("GFP (µV)")
    ax1.set_xlabel("time (ms)")
    for k in peak_idx:
        for ax in (ax0, ax1):
            ax.axvline(t[k], color="r", lw=0.8, ls=":")
    xy = project_sensors(pos, center)
    m = float(np.max(np.abs(x[:, list(peak_idx)]))) if len(peak_idx) else 1.0
    im = None
    for j, k in enumerate(peak_idx):
        ax = fig.add_subplot(gs[:, 1 + j])
        im = _topo(ax, xy, x[:, k], vlim=(-m, m), title=f"{t[k]:.0f} ms")
    if im is not None:
        cb = fig.colorbar(im, ax=fig.axes[2:], shrink=0.5, location="bottom")
        cb.set_label("µV", fontsize=8)
    return fig


def fig_stc_full(
    times, tc, snr, src_pos, values, *, title="", unit="", mark=None, truth=None, peak_time=None
) -> Figure:
    """Peak-source time course, estimated SNR and the map at the peak time in one figure.

    Parameters
    ----------
    times : ndarray, shape (n_times,)
        Seconds.
    tc : ndarray, shape (n_times,)
        Estimate at the peak source (``unit``).
    snr : dict of str -> ndarray (n_times,) | None
        SNR curves to plot (dimensionless), e.g. whitened-data and estimated SNR.
    src_pos : ndarray, shape (n_src, 3)
        Source positions (m).
    values : ndarray, shape (n_src,)
        |estimate| at the peak time.
    mark : ndarray, shape (3,) | None
        Peak position (m), drawn as a star.
    truth : ndarray, shape (n_dip, 3) | None
        True dipole positions (m), drawn as crosses.
    """
    t = np.asarray(times) * 1e3
    p = np.asarray(src_pos) * 1e3
    v = np.asarray(values, float)
    order = np.argsort(v)
    fig = _fig((11, 3.4))
    gs = fig.add_gridspec(2, 3, width_ratios=[1.6, 1, 1])
    ax0 = fig.add_subplot(gs[0, 0])
    ax0.plot(t, tc, color="C0")
    ax0.set_ylabel(unit or "estimate", fontsize=8)
    ax0.set_title("peak source", fontsize=9)
    if peak_time is not None:
        ax0.axvline(peak_time * 1e3, color="r", ls=":", lw=0.8)
    ax1 = fig.add_subplot(gs[1, 0], sharex=ax0)
    if snr:
        for k, (name, curve) in enumerate(snr.items()):
            ax1.plot(t, curve, color=f"C{3 + k}", label=name, lw=1)
        ax1.set_ylabel("SNR", fontsize=8)
        ax1.legend(fontsize=6, loc="upper right", frameon=False)
    else:
        ax1.text(
            0.5,
            0.5,
            "estimated SNR not available",
            ha="center",
            va="center",
            transform=ax1.transAxes,
            fontsize=8,
        )
        ax1.set_yticks([])
    ax1.set_xlabel("time (ms)")
    ax0.tick_params(labelbottom=False)
    sc = None
    for k, (i, j, lab) in enumerate([(0, 1, "top (x-y)"), (1, 2, "side (y-z)")]):
        ax = fig.add_subplot(gs[:, 1 + k])
        sc = ax.scatter(p[order, i], p[order, j], c=v[order], cmap="viridis", s=9)
        if mark is not None:
            mk = np.asarray(mark) * 1e3
            ax.plot(mk[i], mk[j], "*", ms=14, mfc="none", mec="r", mew=1.5, label="peak")
        if truth is not None and len(truth):
            tr = np.atleast_2d(truth) * 1e3
            ax.plot(tr[:, i], tr[:, j], "x", ms=10, color="k", mew=2, label="true dipole")
        _spatial_axes(ax, i, j)
        ax.set_title(lab, fontsize=9)
    if mark is not None or truth is not None:
        handles, labels = fig.axes[-1].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="lower right", ncol=2, frameon=False)
    cb = fig.colorbar(sc, ax=fig.axes[2:], shrink=0.8)
    cb.set_label(f"|estimate| ({unit})" if unit else "|estimate|", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def fig_metric_maps_methods(src_pos, maps: dict, names: dict, units: dict) -> Figure:
    """Top views of metrics (columns) for every method (rows), one colour scale per metric.

    Parameters
    ----------
    src_pos : ndarray, shape (n_src, 3)
        Source positions (m).
    maps : dict of method -> dict of metric -> ndarray (n_src,)
    names, units : dict of metric -> str
    """
    p = np.asarray(src_pos) * 1e3
    methods = list(maps)
    metrics = list(next(iter(maps.values())))
    nr, nc = len(methods), len(metrics)
    fig = _fig((1.9 * nc + 0.8, 1.9 * nr + 1.0))
    axes = fig.subplots(nr, nc, squeeze=False)
    for j, m in enumerate(metrics):
        allv = np.concatenate([np.asarray(maps[k][m], float) for k in methods])
        allv = allv[np.isfinite(allv)]
        vmin, vmax = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
        sc = None
        for i, k in enumerate(methods):
            ax = axes[i, j]
            v = np.asarray(maps[k][m], float)
            order = np.argsort(v)
            sc = ax.scatter(
                p[order, 0], p[order, 1], c=v[order], s=5, cmap="viridis", vmin=vmin, vmax=vmax
            )
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(names.get(m, m), fontsize=8)
            if j == 0:
                ax.set_ylabel(str(k), fontsize=9)
        cb = fig.colorbar(sc, ax=axes[:, j], location="bottom", shrink=0.9)
        cb.set_label(units.get(m, ""), fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return fig
