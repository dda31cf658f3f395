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

from . import _figures as F
from ._context import Ctx, Result, blocks, channels, cond_label, sphere
from ._data import MissingInput, stc_peak, variable, xyz
from ._html import dl, esc, notice, table

__all__ = ["evokeds_section", "gfp_peaks", "resolution_section", "source_estimates_section"]


def gfp_peaks(times, gfp, n_peaks=3, tmin=0.0):
    """Indices of up to ``n_peaks`` largest local GFP maxima at ``times >= tmin``.

    Parameters
    ----------
    times : ndarray, shape (n_times,)
        Seconds.
    gfp : ndarray, shape (n_times,)
    n_peaks : int
    tmin : float
        Seconds; earlier maxima are ignored.

    Returns
    -------
    idx : list of int, sorted by time
    """
    times = np.asarray(times)
    gfp = np.asarray(gfp, float)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    dist = max(1, int(round(0.02 / dt))) if dt > 0 else 1
    # local maxima (numpy only: scipy.signal costs seconds to import in every job)
    inner = np.nonzero((gfp[1:-1] > gfp[:-2]) & (gfp[1:-1] >= gfp[2:]))[0] + 1
    cand = inner[times[inner] >= tmin]
    if cand.size == 0:
        ok = np.nonzero(times >= tmin)[0]
        cand = ok[[int(np.argmax(gfp[ok]))]] if ok.size else np.array([int(np.argmax(gfp))])
    best = []
    for i in cand[np.argsort(gfp[cand])[::-1]]:  # strongest first, >= 20 ms apart
        if all(abs(int(i) - j) >= dist for j in best):
            best.append(int(i))
            if len(best) == n_peaks:
                break
    return sorted(int(i) for i in best)


def _evoked_block(ctx: Ctx, cond) -> list:
    """HTML of one condition's evoked response: nave, GFP peaks, butterfly and maps."""
    ds = ctx.ds(("evoked", cond))
    label = cond_label(ds, cond)
    da = variable(ds, "evoked", "evoked").transpose("channel", "time")
    x = np.asarray(da.values, float)
    t = np.asarray(da["time"].values, float)
    gfp = x.std(axis=0)
    pk = gfp_peaks(t, gfp)
    names, pos_all = channels(ctx)
    lut = dict(zip(names, pos_all, strict=True))
    pos = np.array([lut[str(c)] for c in da["channel"].values])
    center, _, _ = sphere(ctx, pos)
    peaks = ", ".join(f"{t[i] * 1e3:.0f}" for i in pk)
    return [
        f"<h3>{esc(label)}</h3>",
        dl(
            [
                ("epochs averaged (nave)", ds.attrs.get("nave")),
                ("peak GFP", f"{gfp[pk].max() * 1e6:.3g} µV at {peaks} ms"),
            ]
        ),
        ctx.img(lambda: F.fig_evoked_full(t, x, gfp, pk, pos, center, label), f"evoked {label}"),
    ]


def evokeds_section(ctx: Ctx) -> Result:
    """Section "Evoked responses": one block per condition (nave, GFP peaks, topographies).

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
    parts = blocks(res, conds, lambda c: _evoked_block(ctx, c), "evoked", "evoked responses")
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


def _stc_block(ctx: Ctx, cond, method) -> tuple[list, list]:
    """Table row and HTML of one source estimate (sets its summary numbers)."""
    ds = ctx.ds(("stc", cond, method))
    label = cond_label(ds, cond)
    meth = str(ds.attrs.get("method", method))
    pk = stc_peak(ds, "source estimate")
    t, i_src, i_t = pk.times, pk.i_src, pk.i_t
    truth = ctx.truth.get(label, ctx.truth.get(cond))  # by condition name or label
    err_mm = _loc_error_mm(truth, pk)
    if err_mm is not None:
        ctx.summary["loc_error_true_mm"][f"{label}/{meth}"] = err_mm
    snrs = _snr_for(ctx, cond)
    snr = snrs.get("snr")
    if snr is not None:
        ctx.summary["peak_snr"][label] = float(np.nanmax(snr))
    row = [
        label,
        meth,
        round(t[i_t] * 1e3, 1),
        ", ".join(f"{p * 1e3:.1f}" for p in pk.pos[i_src]),
        float(pk.mag[i_src, i_t]),
        pk.unit,
        None if err_mm is None else round(err_mm, 1),
        None if snr is None else round(float(np.nanmax(snr)), 2),
    ]
    parts = [
        f"<h3>{esc(label)}{' (contrast)' if 'contrast' in ds.attrs else ''} &mdash; {esc(meth)}</h3>",
        ctx.img(
            lambda: F.fig_stc_full(
                t,
                pk.amp[i_src],
                {_SNR_NAMES[name]: v for name, v in snrs.items()},
                pk.pos,
                pk.mag[:, i_t],
                title=f"{label} / {meth}: peak at {t[i_t] * 1e3:.0f} ms",
                unit=pk.unit,
                mark=pk.pos[i_src],
                truth=None if truth is None else truth["pos"],
                peak_time=t[i_t],
            ),
            f"source estimate {label} {meth}",
        ),
    ]
    if snr is None:
        parts.append(
            notice("missing", "estimated SNR", "no 'snr' for this condition in the SNR file")
        )
    return row, parts


def source_estimates_section(ctx: Ctx) -> Result:
    """Section "Source estimates": peak, error to the true dipole, SNR per condition and method.

    Parameters
    ----------
    ctx : Ctx
        Reads the source estimates, the SNR file and the simulated truth (if any).

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

    def build(key):
        row, block = _stc_block(ctx, *key)
        rows.append(row)
        return block

    parts = blocks(res, list(stcs), build, "source estimate", "source estimates")
    head = table(
        [
            "condition",
            "method",
            "peak time (ms)",
            "peak position (mm)",
            "peak value",
            "unit",
            "error to true dipole (mm)",
            "max SNR (whitened data)",
        ],
        rows,
    )
    res.body = head + "\n" + "\n".join(parts)
    return res


_RES_METRICS = {
    "psf_peak_err": ("PSF peak localisation error", "mm", 1e3),
    "psf_sd_ext": ("PSF spatial spread (SD)", "mm", 1e3),
    "psf_peak_amp": ("PSF relative amplitude", "", 1.0),
    "ctf_peak_err": ("CTF peak localisation error", "mm", 1e3),
    "ctf_sd_ext": ("CTF spatial spread (SD)", "mm", 1e3),
    "ctf_peak_amp": ("CTF relative amplitude", "", 1.0),
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
    res.body = "\n".join(
        [
            table(["method", "metric", "unit", "median", "90th percentile"], rows),
            ctx.img(lambda: F.fig_distributions(data, titles, units), "resolution distributions"),
            "<h3>Maps over the source space (top view; rows: methods)</h3>",
            ctx.img(
                lambda: F.fig_metric_maps_methods(src_pos, by, titles, units), "resolution maps"
            ),
        ]
    )
    return res
