"""Subject report sections "Evoked responses", "Source estimates" and "Resolution".

Reads the evoked responses (``evoked`` on ``channel`` x ``time``; attributes
``condition``, ``nave``), the source estimates (``stc`` on ``source``
[x ``orientation``] x ``time`` with ``units``; coordinates ``x, y, z`` on
``source``; attributes ``condition``, ``method``), the SNR file (``snr`` and
``snr_est`` on ``condition`` x ``time``, the condition's path-safe label on
``condition``) and the resolution metrics (``psf_*``/``ctf_*`` on
``inverse_method`` x ``source``, in m or dimensionless; ``x, y, z`` on
``source``), as :mod:`exgsrc.steps.preprocess`, :mod:`exgsrc.steps.inverse` and
:mod:`exgsrc.steps.resolution` write them.
"""

from __future__ import annotations

import numpy as np

from . import _figmaps as M
from . import _figures as F
from ._context import (
    Ctx,
    Result,
    baseline_window,
    blocks,
    channels,
    cond_label,
    region_name,
    source_geometry,
    sphere,
)
from ._data import MissingInput, stc_peak, variable, xyz
from ._html import dl, esc, notice, slider, table

__all__ = ["evokeds_section", "gfp_peaks", "resolution_section", "source_estimates_section"]


def gfp_peaks(times, gfp, n_peaks=3, tmin=0.0, tmax=None):
    """Indices of up to ``n_peaks`` largest local GFP maxima in ``[tmin, tmax]``.

    Parameters
    ----------
    times : ndarray, shape (n_times,)
        Seconds.
    gfp : ndarray, shape (n_times,)
    n_peaks : int
    tmin : float
        Seconds; earlier maxima are ignored.
    tmax : float | None
        Seconds; later maxima are ignored (None: none).

    Returns
    -------
    idx : list of int, sorted by time
        Local maxima at least 20 ms apart, strongest first chosen; the window's
        largest value if it holds no local maximum.
    """
    times = np.asarray(times)
    gfp = np.asarray(gfp, float)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    dist = max(1, int(round(0.02 / dt))) if dt > 0 else 1
    inside = times >= tmin
    if tmax is not None:
        inside &= times <= tmax
    # local maxima (numpy only: scipy.signal costs seconds to import in every job)
    inner = np.nonzero((gfp[1:-1] > gfp[:-2]) & (gfp[1:-1] >= gfp[2:]))[0] + 1
    cand = inner[inside[inner]]
    if cand.size == 0:
        ok = np.nonzero(inside)[0]
        cand = ok[[int(np.argmax(gfp[ok]))]] if ok.size else np.array([int(np.argmax(gfp))])
    best = []
    for i in cand[np.argsort(gfp[cand])[::-1]]:  # strongest first, >= 20 ms apart
        if all(abs(int(i) - j) >= dist for j in best):
            best.append(int(i))
            if len(best) == n_peaks:
                break
    return sorted(int(i) for i in best)


def _ms(a, b) -> str:
    return f"{a * 1e3:.0f}–{b * 1e3:.0f} ms"


def _evoked_block(ctx: Ctx, cond) -> list:
    """HTML of one condition's evoked response: nave, GFP peaks, butterfly and maps."""
    ds = ctx.ds(("evoked", cond))
    label = cond_label(ds, cond)
    da = variable(ds, "evoked", "evoked").transpose("channel", "time")
    x = np.asarray(da.values, float)
    t = np.asarray(da["time"].values, float)
    gfp = x.std(axis=0)
    win = ctx.opts.window(t)
    pk = gfp_peaks(t, gfp, ctx.opts.n_peaks, *win)
    ctx.cache[("peak_times", cond)] = (t[pk], t, gfp)
    names, pos_all = channels(ctx)
    lut = dict(zip(names, pos_all, strict=True))
    pos = np.array([lut[str(c)] for c in da["channel"].values])
    center, _, _ = sphere(ctx, pos)
    base = baseline_window(ctx, t)
    peaks = "; ".join(f"{gfp[i] * 1e6:.3g} µV at {t[i] * 1e3:.0f} ms" for i in pk)
    return [
        f"<h3>{esc(label)}</h3>",
        dl(
            [
                ("epochs averaged (nave)", ds.attrs.get("nave")),
                (f"GFP peaks in the response window ({_ms(*win)})", peaks),
            ]
        ),
        ctx.img(
            lambda: F.fig_evoked_full(t, x, gfp, pk, pos, center, label, win, base),
            f"evoked {label}",
        ),
    ]


def evokeds_section(ctx: Ctx) -> Result:
    """Section "Evoked responses": one block per condition (nave, GFP peaks, topographies).

    Peaks are searched in the response window (``report.response_window``), never in
    the baseline or the epoch's last 50 ms.

    Parameters
    ----------
    ctx : Ctx
        Reads the evoked responses, the channel positions and the sphere.

    Returns
    -------
    Result
        A warning naming the failed conditions when others are usable.
    """
    res = Result()
    conds = list(ctx.inputs["evokeds"])
    if not conds:
        raise MissingInput("no evoked files were given")
    parts = [
        '<p class="caption">Every channel (top), the global field power (GFP, the '
        "spatial standard deviation) with the baseline in grey and the response window "
        "in yellow, and scalp maps (seen from above, nose up) at the GFP peaks in the "
        "window.</p>"
    ]
    parts += blocks(res, conds, lambda c: _evoked_block(ctx, c), "evoked", "evoked responses")
    res.body = "\n".join(parts)
    return res


_SNR_NAMES = {"snr": "whitened-data SNR", "snr_est": "estimated SNR"}


def _snr_for(ctx: Ctx, cond_key) -> dict:
    """SNR curves over time of a condition from the subject's ``snr.nc``.

    Returns
    -------
    dict of str -> ndarray (n_times,)
        Keys ``"snr"`` (whitened data) and ``"snr_est"`` (as MNE's
        ``estimate_snr``); empty if the file or the condition is absent.
    """
    snr = ctx.opt("snr")
    if snr is None:
        return {}
    curves = {v: variable(snr, v, "SNR") for v in _SNR_NAMES}
    labels = [str(c) for c in snr["condition"].values]
    if str(cond_key) not in labels:
        return {}
    i = labels.index(str(cond_key))
    return {v: np.asarray(da.isel(condition=i).values, float) for v, da in curves.items()}


def _loc_error_mm(truth: dict | None, pk) -> float | None:
    """Distance (mm) from the estimate's peak to the nearest true dipole, if the truth is known.

    The peak is taken within +-50 ms of the true latency when it is known, else globally.
    """
    if truth is None:
        return None
    k = pk.i_src
    if truth["latency"] is not None:
        win = np.abs(pk.times - truth["latency"]) <= 0.05
        if win.any():
            sub_w = np.where(win[None, :], pk.mag, -np.inf)
            k = np.unravel_index(int(np.argmax(sub_w)), sub_w.shape)[0]
    return float(np.min(np.linalg.norm(truth["pos"] - pk.pos[k], axis=1)) * 1e3)


def _map_times(ctx: Ctx, cond, t, mag, win) -> list:
    """Time indices of the maps: the evoked GFP peaks, else the estimate's own peaks."""
    got = ctx.cache.get(("peak_times", cond))
    if got is not None and len(got[0]):
        idx = [int(np.argmin(np.abs(t - tp))) for tp in got[0]]
        return sorted(set(idx))
    power = np.sqrt(np.mean(mag**2, axis=0))
    return gfp_peaks(t, power, ctx.opts.n_peaks, *win)


def _unit_label(meth, unit) -> str:
    return f"|{meth}| ({unit})" if unit else f"|{meth}|"


def _slider_block(ctx: Ctx, cond, label, meth, pk, win, geo, truth) -> list:
    """The condition's map over time: pre-rendered frames and a slider."""
    n = int(ctx.opts.slider_frames)
    if n < 2 or not ctx.figures:
        return []
    t = pk.times
    idx = list(np.unique(np.round(np.linspace(0, len(t) - 1, min(n, len(t)))).astype(int)))
    main = int(pk.i_t)
    idx[int(np.argmin(np.abs(np.asarray(idx) - main)))] = main
    idx = sorted(set(idx))
    got = ctx.cache.get(("peak_times", cond))
    curve, clabel = None, ""
    if got is not None and len(got[1]) == len(t) and np.allclose(got[1], t):
        curve, clabel = got[2] * 1e6, "GFP (µV)"
    tris, center, radius = geo
    with F.styled():
        frames = M.map_frames(
            pk.pos,
            tris,
            center,
            radius,
            pk.mag,
            t,
            idx,
            views=ctx.opts.views,
            unit_label=_unit_label(meth, pk.unit),
            truth=truth,
            curve=curve,
            curve_label=clabel or f"max |{meth}|",
            window=win,
        )
    return [
        f'<p class="caption">{esc(label)} over the epoch ({esc(meth)}): move the slider '
        "to see the map at another time. One colour scale for all times: grey is below "
        f"{M.ACTIVE_FRACTION:.0%} of the largest value; the star is each time's peak.</p>",
        slider(frames, f"source map {label} {meth}", start=idx.index(main)),
    ]


def _stc_block(ctx: Ctx, cond, method, first: bool) -> tuple[list, list]:
    """Table row and HTML of one source estimate (sets its summary numbers)."""
    ds = ctx.ds(("stc", cond, method))
    label = cond_label(ds, cond) + (" (contrast)" if "contrast" in ds.attrs else "")
    meth = str(ds.attrs.get("method", method))
    t = np.asarray(ds["time"].values, float)
    win = ctx.opts.window(t)
    pk = stc_peak(ds, "source estimate", window=win)
    i_src, i_t = pk.i_src, pk.i_t
    truth = ctx.truth.get(label, ctx.truth.get(cond))  # by condition name or label
    err_mm = _loc_error_mm(truth, pk)
    if err_mm is not None:
        ctx.summary["loc_error_true_mm"][f"{label}/{meth}"] = err_mm
    snrs = _snr_for(ctx, cond)
    snr = snrs.get("snr")
    if snr is not None:
        ctx.summary["peak_snr"][label] = float(np.nanmax(snr))
    geo = source_geometry(ctx, pk.pos)
    row = [
        label,
        meth,
        round(t[i_t] * 1e3, 1),
        region_name(pk.pos[i_src], geo[1]),
        ", ".join(f"{p * 1e3:.0f}" for p in pk.pos[i_src]),
        float(pk.mag[i_src, i_t]),
        pk.unit,
        None if err_mm is None else round(err_mm, 1),
        None if snr is None else round(float(np.nanmax(snr)), 2),
    ]
    tr = None if truth is None else truth["pos"]
    parts = []
    if first:
        parts.append(f"<h3>{esc(label)}</h3>")
        parts += _slider_block(ctx, cond, label, meth, pk, win, geo, tr)
    times = _map_times(ctx, cond, t, pk.mag, win)
    top = max(float(pk.mag[:, i].max()) for i in times)
    quiet = [i for i in times if pk.mag[:, i].max() < M.ACTIVE_FRACTION * top]
    times = [i for i in times if i not in quiet]
    maps = [
        {
            "label": f"{t[i] * 1e3:.0f} ms",
            "values": pk.mag[:, i],
            "peak": pk.pos[int(np.argmax(pk.mag[:, i]))],
        }
        for i in times
    ]
    tc = {
        "times": t,
        "curves": [(f"source at the peak ({row[3]})", pk.amp[i_src])],
        "ylabel": f"{meth} ({pk.unit})" if pk.unit else meth,
        "marks": [t[i] for i in times],
        "window": win,
        "baseline": baseline_window(ctx, t),
        "title": f"peak {row[5]:.3g} at {row[2]:.0f} ms, {row[3]}",
    }
    tris, center, radius = geo
    parts += [
        f"<h4>{esc(label)} &mdash; {esc(meth)}</h4>",
        ctx.img(
            lambda: M.fig_source_maps(
                pk.pos,
                tris,
                center,
                radius,
                maps,
                views=ctx.opts.views,
                unit_label=_unit_label(meth, pk.unit),
                truth=tr,
                peak_label="peak at that time",
                tc=tc,
                snr={_SNR_NAMES[name]: v for name, v in snrs.items()} or None,
            ),
            f"source maps {label} {meth}",
        ),
    ]
    if quiet:
        parts.append(
            f'<p class="caption">Not drawn: the GFP peak{"s" if len(quiet) > 1 else ""} at '
            + ", ".join(f"{t[i] * 1e3:.0f}" for i in quiet)
            + f" ms, where the estimate stays below {M.ACTIVE_FRACTION:.0%} of its largest "
            "value (all grey); the slider above shows every time.</p>"
        )
    if snr is None:
        parts.append(
            notice("missing", "estimated SNR", "no 'snr' for this condition in the SNR file")
        )
    return row, parts


def source_estimates_section(ctx: Ctx) -> Result:
    """Section "Source estimates": where and when the response is, per condition and method.

    Per condition: the map over the epoch with a time slider (the first method),
    then per method the time course at the peak source, the SNR and the maps at
    the evoked response's GFP peaks in the response window, from the configured
    views (``report.views``), with the peak and, for simulated data, the true dipole.

    Parameters
    ----------
    ctx : Ctx
        Reads the source estimates, the SNR file, the source space (triangles) and
        the simulated truth (if any).

    Returns
    -------
    Result
        A warning naming the failed estimates when others are usable; summary keys
        ``peak_snr`` (condition -> max whitened-data SNR) and ``loc_error_true_mm``
        ("condition/method" -> mm).
    """
    res = Result()
    stcs = ctx.inputs["stcs"]
    if not stcs:
        raise MissingInput("no source-estimate files were given")
    rows = []
    ctx.summary["peak_snr"] = {}
    ctx.summary["loc_error_true_mm"] = {}
    seen: set = set()

    def build(key):
        first = key[0] not in seen
        seen.add(key[0])
        row, block = _stc_block(ctx, *key, first=first)
        rows.append(row)
        return block

    parts = blocks(res, list(stcs), build, "source estimate", "source estimates")
    head = table(
        [
            "condition",
            "method",
            "peak time (ms)",
            "where (approx.)",
            "peak position (mm)",
            "peak value",
            "unit",
            "error to true dipole (mm)",
            "max SNR (whitened data)",
        ],
        rows,
    )
    a, b = ctx.opts.response_window
    cap = (
        '<p class="caption">Peaks are searched in the response window (from '
        f"{(0.05 if a is None else a) * 1e3:.0f} ms to "
        + (f"{b * 1e3:.0f} ms" if b is not None else "the epoch's end minus 50 ms")
        + "), never in the baseline. The maps show the surface of the source space "
        "from the left, right, top and back (nose and ears on the head outline); grey is "
        f"below {M.ACTIVE_FRACTION:.0%} of the figure's largest value, the blue star is the "
        "peak.</p>"
    )
    res.body = head + "\n" + cap + "\n" + "\n".join(parts)
    return res


_RES_METRICS = {
    "psf_peak_err": ("PSF peak localisation error", "mm", 1e3),
    "psf_sd_ext": ("PSF spatial spread (SD)", "mm", 1e3),
    "psf_peak_amp": ("PSF relative amplitude", "", 1.0),
    "ctf_peak_err": ("CTF peak localisation error", "mm", 1e3),
    "ctf_sd_ext": ("CTF spatial spread (SD)", "mm", 1e3),
    "ctf_peak_amp": ("CTF relative amplitude", "", 1.0),
}


#: metrics drawn as maps, with what they say
_MAPPED = {
    "psf_peak_err": "Where a point source at each place would be found: the distance "
    "from each source to the peak of its point-spread function (small is good).",
    "psf_sd_ext": "How far a point source at each place is smeared (small is good).",
    "ctf_peak_err": "Where the estimate at each place mostly looks: the distance to the "
    "peak of its cross-talk function (small is good).",
    "ctf_sd_ext": "How much of the head leaks into the estimate at each place (small is good).",
}


def _resolution_by_method(ds) -> dict:
    """{method: {metric: ndarray (n_src,) in display units}} of the metrics in the file."""
    present = [m for m in _RES_METRICS if m in ds.data_vars]
    if not present:
        raise ValueError(f"resolution file has none of {list(_RES_METRICS)}")
    return {
        str(meth): {
            m: np.asarray(ds[m].sel(inverse_method=meth).values, float) * _RES_METRICS[m][2]
            for m in present
        }
        for meth in ds["inverse_method"].values
    }


def resolution_section(ctx: Ctx) -> Result:
    """Section "Resolution (PSF / CTF)": metric distributions and maps per method.

    Parameters
    ----------
    ctx : Ctx
        Reads the resolution metrics.

    Returns
    -------
    Result
        Summary key ``psf_peak_err_median_mm`` (method -> mm).
    """
    res = Result()
    ds = ctx.ds("resolution")
    by = _resolution_by_method(ds)
    src_pos = xyz(ds, "source")
    metrics = list(next(iter(by.values())))
    rows = []
    ctx.summary["psf_peak_err_median_mm"] = {}
    for meth, d in by.items():
        for m in metrics:
            v = d[m][np.isfinite(d[m])]
            rows.append(
                [
                    meth,
                    _RES_METRICS[m][0],
                    _RES_METRICS[m][1] or "ratio",
                    float(np.median(v)) if v.size else None,
                    float(np.percentile(v, 90)) if v.size else None,
                ]
            )
        if "psf_peak_err" in d:
            ctx.summary["psf_peak_err_median_mm"][meth] = float(np.nanmedian(d["psf_peak_err"]))
    titles = {m: _RES_METRICS[m][0] for m in metrics}
    units = {m: _RES_METRICS[m][1] for m in metrics}
    data = {m: {meth: by[meth][m] for meth in by} for m in metrics}
    parts = [
        table(["method", "metric", "unit", "median", "90th percentile"], rows),
        ctx.img(lambda: F.fig_distributions(data, titles, units), "resolution distributions"),
    ]
    tris, center, radius = source_geometry(ctx, src_pos)
    for m in [m for m in _MAPPED if m in metrics]:
        parts += [
            f"<h3>{esc(titles[m])}</h3>",
            f'<p class="caption">{esc(_MAPPED[m])} One colour scale for all methods (rows).</p>',
            ctx.img(
                lambda m=m: M.fig_source_maps(
                    src_pos,
                    tris,
                    center,
                    radius,
                    [{"label": meth, "values": by[meth][m]} for meth in by],
                    views=ctx.opts.views,
                    unit_label=f"{titles[m]} ({units[m] or 'ratio'})",
                    kind="metric",
                ),
                f"map of {titles[m]}",
            ),
        ]
    res.body = "\n".join(parts)
    return res
