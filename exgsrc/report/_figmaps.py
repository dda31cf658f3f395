"""Figures of source maps: values on the shaded source surface from the standard views.

Each figure has one colour scale (with its units) shared by all its maps. Activity
(source estimates, grand averages) is drawn on a grey surface that turns dark red
to yellow above a fraction of the scale (:func:`exgsrc.report._brain.activation_cmap`),
so the active region stands out; metrics (sensitivity, resolution) colour every
source (viridis). The peak is a blue star, true dipoles (simulated data) are black
rings, other positions (each subject's peak in the cohort report) white dots.

Built inside :func:`exgsrc.report._figures.styled`, like every report figure.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._brain import activation_cmap, draw_brain, move_mark
from ._figures import WIDTH, fig
from ._html import FIGURE_HOOKS

__all__ = [
    "ACTIVE_FRACTION",
    "colour_scale",
    "fig_forward",
    "fig_source_maps",
    "map_frames",
]

#: fraction of the colour scale below which activity stays grey
ACTIVE_FRACTION = 0.5

_VIEW_TITLES = {"left": "left", "right": "right", "top": "top", "back": "back", "front": "front"}


def colour_scale(values, kind: str = "activation"):
    """Colour map and normalisation shared by the maps of one figure.

    Parameters
    ----------
    values : ndarray
        Every value the figure shows.
    kind : {"activation", "metric"}
        ``activation``: 0 to the maximum, grey below :data:`ACTIVE_FRACTION`;
        ``metric``: viridis from the 2nd to the 98th percentile.

    Returns
    -------
    cmap : Colormap
    norm : matplotlib.colors.Normalize
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if kind == "activation":
        top = float(np.max(np.abs(v))) if v.size else 1.0
        return activation_cmap(ACTIVE_FRACTION), Normalize(0.0, top if top > 0 else 1.0)
    import matplotlib as mpl

    lo, hi = (float(np.percentile(v, 2)), float(np.percentile(v, 98))) if v.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return mpl.colormaps["viridis"], Normalize(lo, hi)


def _legend(f, truth, others, peak_label, others_label):
    """Marker legend under the maps (only the markers that are drawn)."""
    from ._brain import _MARKS

    handles = []
    if peak_label:
        handles.append(Line2D([], [], **_MARKS["peak"], label=peak_label))
    if truth is not None and len(np.atleast_2d(truth)):
        handles.append(Line2D([], [], **_MARKS["truth"], label="true dipole (simulation)"))
    if others is not None and len(np.atleast_2d(others)):
        handles.append(Line2D([], [], **_MARKS["other"], label=others_label))
    if handles:
        f.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def _time_course(ax, tc):
    """The time-course panel: curves, subjects, interval, window, baseline, marked times."""
    t = np.asarray(tc["times"], float) * 1e3
    if tc.get("baseline") is not None:
        b = tc["baseline"]
        ax.axvspan(b[0] * 1e3, b[1] * 1e3, color="0.9", lw=0, zorder=0, label="baseline")
    if tc.get("window") is not None:
        w = tc["window"]
        ax.axvspan(
            w[0] * 1e3, w[1] * 1e3, color="#fff1c9", lw=0, zorder=0, label="response window"
        )
    subj = tc.get("subjects")
    if subj is not None and len(subj):
        for k, y in enumerate(subj):
            ax.plot(t, y, color="0.3", lw=0.8, alpha=0.7, label="each subject" if k == 0 else None)
    if tc.get("band") is not None:
        lo, hi = tc["band"]
        ax.fill_between(t, lo, hi, color="C0", alpha=0.2, lw=0, label=tc.get("band_label"))
    for label, y in tc["curves"]:
        ax.plot(t, y, lw=1.8 if subj is not None else 1.3, label=label)
    for k, tm in enumerate(tc.get("marks") or []):
        ax.axvline(tm * 1e3, color="r", ls=":", lw=1.2, label="maps below" if k == 0 else None)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(tc.get("ylabel", ""))
    if tc.get("title"):
        ax.set_title(tc["title"])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _maps_grid(
    sf, pos, tris, center, radius, maps, views, unit_label, kind, truth, others, scale=None
):
    """Rows of maps in a (sub)figure with one colour bar; returns the views and the scale.

    ``scale``: the values the colour scale spans (default: those of ``maps``).
    """
    if scale is None:
        scale = np.concatenate([np.ravel(m["values"]) for m in maps])
    cmap, norm = colour_scale(scale, kind)
    axes = sf.subplots(len(maps), len(views), squeeze=False)
    bvs = []
    for i, m in enumerate(maps):
        v = np.asarray(m["values"], float)
        peak = m.get("peak")
        if (
            peak is not None
            and kind == "activation"
            and np.nanmax(v) < ACTIVE_FRACTION * norm.vmax
        ):
            peak = None  # no star on a map with nothing above the grey
        for j, view in enumerate(views):
            ax = axes[i, j]
            bvs.append(
                draw_brain(
                    ax,
                    pos,
                    v,
                    tris,
                    view,
                    center=center,
                    radius=radius,
                    cmap=cmap,
                    norm=norm,
                    peak=peak,
                    truth=truth,
                    others=others,
                )
            )
            if i == 0:
                ax.set_title(_VIEW_TITLES.get(view, view))
            if j == 0 and m.get("label"):
                ax.annotate(
                    m["label"],
                    (-0.03, 0.5),
                    xycoords="axes fraction",
                    rotation=90,
                    ha="right",
                    va="center",
                    fontsize=12,
                    fontweight="bold",
                )
    cb = sf.colorbar(ScalarMappable(norm, cmap), ax=axes.ravel().tolist(), shrink=0.85, aspect=25)
    cb.set_label(unit_label)
    return bvs, cmap, norm


def fig_source_maps(
    pos,
    tris,
    center,
    radius,
    maps,
    *,
    views=("left", "right", "top", "back"),
    unit_label="",
    kind="activation",
    truth=None,
    others=None,
    others_label="each subject's peak",
    peak_label="peak",
    tc=None,
    snr=None,
    title=None,
) -> Figure:
    """Rows of maps (one per time or method) from the standard views, one colour scale.

    Parameters
    ----------
    pos : ndarray, shape (n_src, 3)
        Source positions (m).
    tris : ndarray of int, shape (n_tris, 3) | None
        Source-surface triangles; None: maximum-intensity projections (glass brain).
    center : ndarray, shape (3,)
        Head centre (m).
    radius : float
        Scalp radius (m), for the head outline.
    maps : list of dict
        One row each: ``label`` (str, left of the row), ``values`` (n_src,),
        optional ``peak`` (3,) m (not drawn on an activity map with nothing above
        the grey).
    views : sequence of str
        Columns (:data:`exgsrc.report._brain.VIEWS`).
    unit_label : str
        Colour-bar label, with the units.
    kind : {"activation", "metric"}
        See :func:`colour_scale`.
    truth : ndarray, shape (n, 3) | None
        True dipoles (m).
    others : ndarray, shape (n, 3) | None
        More positions (m), e.g. each subject's peak.
    others_label, peak_label : str
        Legend entries.
    tc : dict | None
        A time-course panel above the maps: ``times`` (s), ``curves`` [(label, y)],
        ``ylabel``; optional ``marks`` (s), ``window``, ``baseline`` (s),
        ``subjects`` (n_sub, n_times), ``band`` (lo, hi), ``band_label``, ``title``.
    snr : dict of str -> ndarray | None
        SNR curves (on ``tc["times"]``), a panel beside the time course.
    title : str | None

    Returns
    -------
    matplotlib.figure.Figure
    """
    views = list(views)
    nv, nr = len(views), len(maps)
    panel = (WIDTH - 1.3) / max(nv, 3)
    maps_h = nr * panel + 0.35 + 0.45
    top_h = 2.9 if tc is not None else 0.0
    f = fig((WIDTH, maps_h + top_h + (0.4 if title else 0.0)))
    if tc is not None:
        sf_top, sf_maps = f.subfigures(2, 1, height_ratios=[top_h, maps_h])
        if snr:
            ax0, ax1 = sf_top.subplots(1, 2, width_ratios=[1.25, 1])
            _time_course(ax0, tc)
            t = np.asarray(tc["times"], float) * 1e3
            for k, (name, y) in enumerate(snr.items()):
                ax1.plot(t, y, color=f"C{3 + k}", lw=1.3, label=name)
            ax1.set_xlabel("time (ms)")
            ax1.set_ylabel("SNR")
            ax1.set_title("signal-to-noise ratio")
            ax1.legend(loc="best", frameon=False)
        else:
            _time_course(sf_top.subplots(), tc)
    else:
        sf_maps = f
    _maps_grid(sf_maps, pos, tris, center, radius, maps, views, unit_label, kind, truth, others)
    has_peak = any(m.get("peak") is not None for m in maps)
    _legend(sf_maps, truth, others, peak_label if has_peak else None, others_label)
    if title:
        f.suptitle(title)
    return f


def map_frames(
    pos,
    tris,
    center,
    radius,
    amp,
    times,
    idx,
    *,
    views=("left", "right", "top", "back"),
    unit_label="",
    truth=None,
    curve=None,
    curve_label="",
    window=None,
    dpi=100,
    quality=60,
) -> list:
    """JPEG frames of the maps over time, one colour scale (the largest value shown).

    One figure is drawn once and re-coloured per frame: the views of the
    estimate at each time, the peak of that time (a star, where it rises above
    the grey) and, beneath, a strip with ``curve`` and a cursor at the frame's time.

    Parameters
    ----------
    pos, tris, center, radius
        As in :func:`fig_source_maps`.
    amp : ndarray, shape (n_src, n_times)
        |estimate| per source and time.
    times : ndarray, shape (n_times,)
        Seconds.
    idx : sequence of int
        Time indices of the frames.
    views : sequence of str
    unit_label : str
    truth : ndarray, shape (n, 3) | None
    curve : ndarray, shape (n_times,) | None
        A curve for the strip (e.g. the GFP); None: the maximum over sources.
    curve_label : str
    window : tuple of float | None
        Response window (s), shaded in the strip.
    dpi : float
    quality : int
        JPEG quality.

    Returns
    -------
    list of (str, bytes)
        The frame's time label and its JPEG.
    """
    amp = np.abs(np.asarray(amp, float))
    t = np.asarray(times, float)
    idx = [int(i) for i in idx]
    views = list(views)
    width = 0.85 * WIDTH
    panel = (width - 1.2) / max(len(views), 3)
    f = fig((width, panel + 0.45 + 1.6))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(f)  # drawn again and again on the same canvas
    sf_maps, sf_strip = f.subfigures(2, 1, height_ratios=[panel + 0.45, 1.6])
    maps = [{"values": amp[:, idx[0]], "peak": pos[int(np.argmax(amp[:, idx[0]]))]}]
    bvs, _, norm = _maps_grid(
        sf_maps,
        pos,
        tris,
        center,
        radius,
        maps,
        views,
        unit_label,
        "activation",
        truth,
        None,
        scale=amp[:, idx],
    )
    axc = sf_strip.subplots()
    y = amp.max(axis=0) if curve is None else np.asarray(curve, float)
    if window is not None:
        axc.axvspan(window[0] * 1e3, window[1] * 1e3, color="#fff1c9", lw=0, zorder=0)
    axc.plot(t * 1e3, y, color="0.3", lw=1.2)
    axc.set_xlim(t[0] * 1e3, t[-1] * 1e3)
    axc.set_xlabel("time (ms)")
    axc.set_ylabel(curve_label or "max")
    # above the axis lines, as the blitted frames draw it (same pixels either way)
    cursor = axc.axvline(t[idx[0]] * 1e3, color="r", lw=2, zorder=3)
    stamp = axc.set_title("")
    out = []
    animated = []
    background = None
    for i in idx:
        k = int(np.argmax(amp[:, i]))
        strong = amp[k, i] >= ACTIVE_FRACTION * norm.vmax  # no star on noise
        for bv in bvs:
            bv.set_values(amp[:, i])
            if bv.peak_line is not None:
                move_mark(bv, bv.peak_line, pos[k])
                bv.peak_line.set_visible(bool(strong))
        cursor.set_xdata([t[i] * 1e3, t[i] * 1e3])
        label = f"{t[i] * 1e3:.0f} ms"
        stamp.set_text(f"map at {label}")
        if background is None:
            # First frame: a full draw with the layout, as every report figure.
            buf = io.BytesIO()
            f.savefig(
                buf, format="jpeg", dpi=dpi, pil_kwargs={"quality": quality, "optimize": True}
            )
            out.append((label, buf.getvalue()))
            for hook in FIGURE_HOOKS:
                hook(f)
            # The frames differ only in the maps, their markers, the cursor and the
            # time stamp: draw everything else once (blitting; matplotlib's
            # "Faster rendering by using blitting" recipe) and per frame restore
            # that background and draw just those artists, in z-order.
            f.set_layout_engine("none")
            f.set_dpi(dpi)
            animated = _changing_artists(bvs) + [cursor, stamp]
            for a in animated:
                a.set_animated(True)
            f.canvas.draw()
            background = f.canvas.copy_from_bbox(f.bbox)
            continue
        f.canvas.restore_region(background)
        for a in animated:
            f.draw_artist(a)
        out.append((label, _jpeg(f.canvas, quality)))
    return out


def _changing_artists(bvs) -> list:
    """Each map's surface (or image) and every artist drawn above it, in drawing order.

    Redrawing these over a background drawn without them gives the same pixels
    as a full draw: nothing else of the figure overlaps the map axes.
    """
    artists = []
    for bv in bvs:
        surface = bv.artist if bv.artist is not None else bv.image
        above = [
            c
            for c in bv.ax.get_children()
            if c is not surface
            and c.get_zorder() >= surface.get_zorder()
            and c not in bv.ax.spines.values()
            and c is not bv.ax.patch
            and c not in (bv.ax.xaxis, bv.ax.yaxis)
        ]
        # same order as Axes.draw: by z-order, stable in the order they were added
        artists += [surface] + sorted(above, key=lambda c: c.get_zorder())
    return artists


def _jpeg(canvas, quality: int) -> bytes:
    """The canvas' pixels as a JPEG (as ``savefig(format="jpeg")`` writes them)."""
    from PIL import Image

    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def fig_forward(ch_pos, center, ch_norm, src_pos, src_norm, tris, radius) -> Figure:
    """Gain norm per channel (scalp map), per source (the source surface), and its spread.

    Parameters
    ----------
    ch_pos : ndarray, shape (n_ch, 3)
        Electrode positions (m).
    center : ndarray, shape (3,)
        Head centre (m).
    ch_norm : ndarray, shape (n_ch,)
        Norm of each gain row (V/(A·m)).
    src_pos : ndarray, shape (n_src, 3)
        Source positions (m).
    src_norm : ndarray, shape (n_src,)
        Norm of each source's gain columns (V/(A·m)).
    tris : ndarray of int, shape (n_tris, 3) | None
        Source-surface triangles (None: maximum-intensity projections).
    radius : float
        Scalp radius (m).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ._figures import project_sensors, topomap

    f = fig((WIDTH, 3.5))
    axes = f.subplots(1, 4, width_ratios=[1, 1, 1, 1.1])
    im = topomap(axes[0], project_sensors(ch_pos, center), ch_norm, cmap="viridis")
    axes[0].set_title("per channel")
    f.colorbar(im, ax=axes[0], shrink=0.8, location="bottom").set_label("gain norm (V/(A·m))")
    s = np.asarray(src_norm, float)
    cmap, norm = colour_scale(s, "metric")
    for ax, view in zip(axes[1:3], ("left", "top"), strict=True):
        draw_brain(ax, src_pos, s, tris, view, center=center, radius=radius, cmap=cmap, norm=norm)
        ax.set_title(f"per source, {view}")
    cb = f.colorbar(ScalarMappable(norm, cmap), ax=list(axes[1:3]), shrink=0.8, location="bottom")
    cb.set_label("gain norm (V/(A·m))")
    pos_s = s[s > 0]
    if pos_s.size:
        axes[3].hist(np.log10(pos_s), bins=30, color="0.4")
    axes[3].set_xlabel("log10 gain norm (V/(A·m))")
    axes[3].set_ylabel("sources")
    axes[3].set_title("spread over sources")
    return f
