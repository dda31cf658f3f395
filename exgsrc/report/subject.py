"""Per-subject QC report: one section per pipeline step, self-contained HTML.

Inputs are the workflow's netCDF outputs (paths or :class:`xarray.Dataset`).
Every section is built independently: a missing input renders a "missing"
block, an exception renders a "failed" block with the reason, and the rest of
the report is still produced.

What the sections read (all optional; absent pieces are reported as such;
the names are those written by :mod:`exgsrc.pipeline`, with fallbacks):

- montage: all recorded channels on ``channel`` with ``x``/``y``/``z`` (m),
  ``used`` and ``excluded_reason`` coords; attrs ``sfreq``, ``warnings``.
  (Fallback: attr ``excluded_channels``, JSON object name -> reason.)
- headmodel: vars ``radii`` (shell), ``center`` (xyz); attr ``kind``.
  (Fallback: forward attrs ``sphere_radii``/``sphere_center``; else a sphere
  is fitted here and the report says so.)
- fwd: var ``gain`` (channel, source[, orientation]); source coords ``x``,
  ``y``, ``z``; channel coords ``ch_x``, ``ch_y``, ``ch_z``.
- epochs (``*_epo.nc``, attributes only): ``epoch_counts`` (condition ->
  total/kept/dropped), ``drop_details`` (label and reason per dropped epoch),
  ``sfreq``, ``filter``, ``baseline``, ``tmin``, ``tmax``, ``reject``,
  ``warnings``. (Fallback: ``nave``, ``n_epochs``, ``drop_log`` on evokeds.)
- cov: var ``cov`` (channel, channel2); attrs ``rank`` (-1 unknown),
  ``rank_estimated``, ``nfree``, ``method``, ``cov_tmin``/``cov_tmax``.
- evoked (per condition): var ``evoked`` (channel, time) in V; attrs
  ``condition`` (original trial_type), ``nave``.
- stc (per condition and method): var ``stc`` (source[, orientation], time);
  attrs ``method``, ``condition``; ``units`` on the variable.
- snr: vars ``snr``/``snr_est`` (condition, time) with ``condition_name``.
- resolution: vars ``psf_*``/``ctf_*`` (method, source) or (source), in m.
- any file with attr ``exgsrc_status == "failed"`` (``exgsrc_error``) renders
  its section as failed with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _figures as F
from ._data import MissingInput, StepFailed, attr_json, data_var, load, positions, source_amplitude
from ._html import (
    STATUS_ORDER,
    Markup,
    dl,
    esc,
    fig_to_img,
    notice,
    pre_json,
    render_page,
    section,
    status_badge,
    table,
    worst_status,
)

__all__ = ["subject_report", "subject_summary", "whitened_gfp", "gfp_peaks"]


#: inputs of which only attributes and coordinates are read (epochs can be large)
_ATTRS_ONLY = {"epochs", "inv"}


@dataclass
class _Result:
    status: str = "ok"
    body: str = ""
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # shown and listed, but do not change status


@dataclass
class _Ctx:
    subject: str
    task: str | None
    inputs: dict
    truth: dict
    config: dict | None
    figures: bool
    cache: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def ds(self, key, what=None):
        if key not in self.cache:
            try:
                self.cache[key] = load(
                    self.inputs.get(key), what or key, attrs_only=key in _ATTRS_ONLY
                )
            except (MissingInput, StepFailed, ValueError) as err:
                self.cache[key] = err
        v = self.cache[key]
        if isinstance(v, Exception):
            raise v
        return v

    def opt(self, key):
        try:
            return self.ds(key)
        except (MissingInput, StepFailed, ValueError):
            return None

    def img(self, make: Callable, alt: str) -> str:
        if not self.figures:
            return ""
        return fig_to_img(make(), alt=alt)


# ----------------------------------------------------------------------------- numerics


def whitened_gfp(data, nave, cov, rank=None):
    """Whitened global field power (as MNE's ``plot_white``): ~1 where only noise.

    Both data and covariance are projected onto the average reference, the
    covariance is whitened through its ``rank`` leading eigenvectors, and the
    sum of squared whitened channels is divided by the rank.

    Parameters
    ----------
    data : ndarray, shape (n_ch, n_times)
        Evoked data (V).
    nave : int
        Number of averaged epochs (noise scales as 1/sqrt(nave)).
    cov : ndarray, shape (n_ch, n_ch)
        Noise covariance of single epochs (V²), same channel order.
    rank : int | None
        Rank to whiten with; estimated from the spectrum if None.

    Returns
    -------
    gfp : ndarray, shape (n_times,)
        Chi-square per degree of freedom (dimensionless).
    rank : int
    """
    data = np.asarray(data, float)
    cov = np.asarray(cov, float)
    n = cov.shape[0]
    proj = np.eye(n) - 1.0 / n
    c = proj @ cov @ proj
    w, u = np.linalg.eigh((c + c.T) / 2)
    order = np.argsort(w)[::-1]
    w, u = w[order], u[:, order]
    est = int(np.sum(w > w[0] * 1e-10)) if w[0] > 0 else 0
    r = min(int(rank) if rank is not None else est, n - 1, est)
    if r < 1:
        raise ValueError("noise covariance has rank 0 after average reference")
    white = (u[:, :r].T / np.sqrt(w[:r])[:, None]) @ (proj @ data) * np.sqrt(max(nave, 1))
    return np.sum(white**2, axis=0) / r, r


def gfp_peaks(times, gfp, n_peaks=3, tmin=0.0):
    """Indices of up to ``n_peaks`` largest local GFP maxima at ``times >= tmin``.

    Parameters
    ----------
    times : ndarray, shape (n_times,)
        Seconds.
    gfp : ndarray, shape (n_times,)

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


def _sphere(ctx: _Ctx, ch_pos):
    """Sphere (center, radii, origin text) from the head model, forward attrs, or a fit here."""
    hm = ctx.opt("headmodel")
    if hm is not None and "radii" in hm.data_vars:
        center = np.asarray(hm["center"].values, float) if "center" in hm else np.zeros(3)
        kind = attr_json(hm, "kind", default="")
        origin = f"head model file ({kind})"
        if "conductivities" in hm.data_vars:
            cond = ", ".join(f"{float(c):.4g}" for c in hm["conductivities"].values)
            origin += f"; conductivities {cond} S/m (inner to outer)"
        return center, [float(r) for r in hm["radii"].values], origin
    for key in ("fwd", "montage"):
        ds = ctx.opt(key)
        radii = attr_json(ds, "sphere_radii") if ds is not None else None
        if radii is not None:
            center = attr_json(ds, "sphere_center", default=[0.0, 0.0, 0.0])
            radii = [float(r) for r in np.atleast_1d(radii)]
            return np.asarray(center, float).ravel()[:3], radii, f"{key} file attributes"
    center, r = F.fit_sphere(ch_pos)
    return center, [r], "least-squares fit to the electrodes (no sphere in the inputs)"


def _used_mask(ds):
    """Boolean mask of used channels (montage ``used`` coord), or None."""
    if "used" in ds.variables and ds["used"].dims == ("channel",):
        return np.asarray(ds["used"].values).astype(bool)
    return None


def _channels(ctx: _Ctx):
    """(names, positions) of the channels used, from montage, forward or an evoked."""
    first_err = None
    for key in ["montage", "fwd"] + [("evoked", c) for c in ctx.inputs.get("evokeds", {})]:
        try:
            ds = _get(ctx, key)
        except (StepFailed, ValueError) as err:
            first_err = first_err or err
            continue
        except MissingInput:
            continue
        try:
            pos = positions(ds, "channel")
        except MissingInput:
            continue
        names = np.array([str(c) for c in ds["channel"].values], dtype=object)
        used = _used_mask(ds)
        if used is None:
            used = np.all(np.isfinite(pos), axis=1)
        return list(names[used]), pos[used]
    if first_err is not None:  # say why, e.g. the montage step failed
        raise first_err
    raise MissingInput("no input with channel positions (montage, forward or evoked)")


def _get(ctx: _Ctx, key):
    if isinstance(key, tuple):
        kind, name = key[0], key[1:]
        cache_key = key
        if cache_key not in ctx.cache:
            src = ctx.inputs["evokeds" if kind == "evoked" else "stcs"].get(
                name[0] if kind == "evoked" else name
            )
            try:
                ctx.cache[cache_key] = load(src, f"{kind} {'/'.join(map(str, name))}")
            except (MissingInput, StepFailed, ValueError) as err:
                ctx.cache[cache_key] = err
        v = ctx.cache[cache_key]
        if isinstance(v, Exception):
            raise v
        return v
    return ctx.ds(key)


def _cond_label(ds, key):
    return str(attr_json(ds, "condition", "trial_type", default=key))


def _mm(x):
    return float(x) * 1e3


# ----------------------------------------------------------------------------- sections


def _excluded_channels(ctx: _Ctx) -> dict:
    """{channel: reason} of channels not used, from the montage or file attributes."""
    excluded = {}
    mont = ctx.opt("montage")
    if mont is not None and _used_mask(mont) is not None:
        used = _used_mask(mont)
        names = [str(c) for c in mont["channel"].values]
        reason = (
            [str(r) for r in mont["excluded_reason"].values]
            if "excluded_reason" in mont.variables
            else [""] * len(names)
        )
        for n, u, r in zip(names, used, reason, strict=True):
            if not u:
                excluded[n] = r or "excluded"
        return excluded
    for key in ["montage", "fwd"] + [("evoked", c) for c in ctx.inputs.get("evokeds", {})]:
        try:
            ds = _get(ctx, key)
        except (MissingInput, StepFailed, ValueError):
            continue
        ex = attr_json(ds, "excluded_channels", "bads", default=None)
        if isinstance(ex, dict):
            excluded.update({str(k): str(v) for k, v in ex.items()})
        elif isinstance(ex, list | tuple):
            excluded.update({str(k): "bad" for k in ex})
        elif isinstance(ex, str) and ex:
            excluded[ex] = "bad"
    return excluded


def _epoch_counts(ctx: _Ctx) -> tuple[list, dict, list]:
    """Rows (condition, kept, total, dropped, reasons), recording info, warnings."""
    rows, info, warns = [], {}, []
    ep = ctx.opt("epochs")
    conds = {}
    for key in ctx.inputs.get("evokeds", {}):
        try:
            conds[key] = _cond_label(_get(ctx, ("evoked", key)), key)
        except (MissingInput, StepFailed, ValueError):
            conds[key] = key
    if ep is not None:
        counts = attr_json(ep, "epoch_counts", default={}) or {}
        details = attr_json(ep, "drop_details", default=[]) or []
        reasons: dict = {}
        for d in details:
            if isinstance(d, dict):
                lab = str(d.get("label"))
                r = str(d.get("reason", "dropped"))
                reasons.setdefault(lab, {}).setdefault(r, 0)
                reasons[lab][r] += 1
        for cond, c in counts.items():
            c = c if isinstance(c, dict) else {}
            rr = reasons.get(str(cond), {})
            rows.append(
                [
                    str(cond),
                    c.get("kept"),
                    c.get("total"),
                    c.get("dropped"),
                    "; ".join(f"{k}: {v}" for k, v in sorted(rr.items())) or None,
                ]
            )
        filt = attr_json(ep, "filter", default=None)
        if isinstance(filt, dict):
            info["l_freq"], info["h_freq"] = filt.get("l_freq"), filt.get("h_freq")
        for k in ("sfreq", "baseline", "tmin", "tmax", "reject"):
            v = attr_json(ep, k, default=None)
            if v is not None:
                info[k] = v
        warns += [str(w) for w in (attr_json(ep, "warnings", default=[]) or [])]
    else:
        for cond in ctx.inputs.get("evokeds", {}):
            try:
                ds = _get(ctx, ("evoked", cond))
            except (MissingInput, StepFailed, ValueError) as err:
                rows.append([cond, None, None, None, f"evoked unavailable: {err}"])
                continue
            kept = attr_json(ds, "nave", default=None)
            total = attr_json(ds, "n_epochs", default=None)
            log = attr_json(ds, "drop_log", default=None)
            reasons = {}
            if isinstance(log, dict):
                reasons = {str(k): int(v) for k, v in log.items()}
            elif isinstance(log, list):
                for entry in log:
                    for r in [entry] if isinstance(entry, str) else list(entry or []):
                        reasons[str(r)] = reasons.get(str(r), 0) + 1
                total = len(log) if total is None else total
            dropped = int(total) - int(kept) if total is not None and kept is not None else None
            rows.append(
                [
                    conds[cond],
                    kept,
                    total,
                    dropped,
                    "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or None,
                ]
            )
            for k in ("sfreq", "l_freq", "h_freq", "baseline", "tmin", "tmax"):
                v = attr_json(ds, k, default=None)
                if v is not None and k not in info:
                    info[k] = v
            if "sfreq" not in info and "time" in ds.coords and ds.sizes["time"] > 1:
                info["sfreq"] = float(1.0 / np.median(np.diff(ds["time"].values)))
    mont = ctx.opt("montage")
    if mont is not None:
        if "sfreq" not in info and "sfreq" in mont.attrs:
            info["sfreq"] = attr_json(mont, "sfreq")
        warns += [str(w) for w in (attr_json(mont, "warnings", default=[]) or [])]
    return rows, info, warns


def _sec_data(ctx: _Ctx) -> _Result:
    res = _Result()
    parts = []
    names, _ = _channels(ctx)
    excluded = _excluded_channels(ctx)
    n_used, n_ex = len(names), len(excluded)
    ctx.summary["n_channels"] = n_used
    ctx.summary["n_excluded"] = n_ex
    parts.append(
        f"<p><strong>{n_used}</strong> channels used, <strong>{n_ex}</strong> excluded.</p>"
    )
    if n_ex:
        parts.append(table(["excluded channel", "reason"], sorted(excluded.items())))
        n_eeg_bad = sum(1 for r in excluded.values() if "not EEG" not in r)
        if n_eeg_bad > 0.2 * (n_used + n_eeg_bad):
            res.warnings.append(
                f"{n_eeg_bad} of {n_used + n_eeg_bad} EEG channels excluded (> 20%)"
            )
    parts.append(
        f"<details><summary>channels used ({n_used})</summary><p>"
        f"{esc(', '.join(names))}</p></details>"
    )
    rows, info, warns = _epoch_counts(ctx)
    ctx.summary["epochs"] = {}
    empty = []
    for cond, kept, total, _dropped, _ in rows:
        ctx.summary["epochs"][str(cond)] = None if kept is None else int(kept)
        if total and kept is not None and int(total) - int(kept) > 0.3 * int(total):
            res.warnings.append(
                f"condition {cond}: {int(total) - int(kept)} of {total} epochs dropped (> 30%)"
            )
        if kept is not None and int(kept) == 0:
            empty.append(str(cond))
            res.warnings.append(
                f"condition {cond}: no epochs kept"
                + (f" (all {total} rejected)" if total else " (no such event in this subject)")
            )
    if rows and len(empty) == len(rows):
        res.status = "failed"  # no condition has a single epoch: nothing to analyse
    res.notes += [f"reader: {w}" for w in warns]
    if rows:
        parts.append("<h3>Epochs per condition</h3>")
        parts.append(table(["condition", "kept", "total", "dropped", "drop reasons"], rows))
    else:
        parts.append(notice("missing", "epochs", "no epochs or evoked files were given"))
        res.status = "missing"
    lf, hf = info.get("l_freq"), info.get("h_freq")
    filt = (
        f"high-pass {lf if lf is not None else 'none'} Hz, "
        f"low-pass {hf if hf is not None else 'none'} Hz"
        if ("l_freq" in info or "h_freq" in info)
        else "not recorded in the inputs"
    )
    sf = info.get("sfreq")
    items = [
        ("sampling rate", f"{float(sf):.6g} Hz" if sf is not None else "not recorded"),
        ("filter", filt),
        ("baseline (s)", info.get("baseline", "not recorded")),
    ]
    if "tmin" in info and "tmax" in info:
        items.append(("epoch window (s)", f"{info['tmin']} to {info['tmax']}"))
    if "reject" in info:
        items.append(("rejection", json.dumps(info["reject"], default=str)))
    parts.append(dl(items))
    ctx.summary["baseline"] = info.get("baseline")
    res.body = "\n".join(parts)
    return res


def _sec_head(ctx: _Ctx) -> _Result:
    res = _Result()
    names, pos = _channels(ctx)
    center, radii, origin = _sphere(ctx, pos)
    scalp = max(radii)
    dist = np.linalg.norm(pos - center, axis=1) - scalp  # recomputed: same definition as the
    # head model's electrode_distance, and available when only a forward file exists
    ctx.summary["max_electrode_distance_mm"] = float(np.max(np.abs(dist)) * 1e3)
    worst = np.argsort(-np.abs(dist))[:5]
    parts = [
        dl(
            [
                ("sphere from", origin),
                ("centre (mm)", ", ".join(f"{c * 1e3:.1f}" for c in center)),
                ("radii (mm, inner to outer)", ", ".join(f"{r * 1e3:.1f}" for r in sorted(radii))),
                (
                    "electrode distance from scalp (mm)",
                    f"median {np.median(dist) * 1e3:.2f}, max |d| {np.max(np.abs(dist)) * 1e3:.2f}",
                ),
            ]
        )
    ]
    parts.append(
        table(
            ["farthest electrodes", "distance from scalp (mm)"],
            [[names[i], round(_mm(dist[i]), 2)] for i in worst],
        )
    )
    if np.max(np.abs(dist)) > 0.01:
        res.warnings.append(
            f"electrode {names[worst[0]]} is {_mm(dist[worst[0]]):.1f} mm from the scalp sphere"
        )
    parts.append(ctx.img(lambda: F.fig_sensors_sphere(pos, center, radii), "electrodes on sphere"))
    res.body = "\n".join(parts)
    return res


def _sec_forward(ctx: _Ctx) -> _Result:
    res = _Result()
    ds = ctx.ds("fwd", "forward")
    g = data_var(ds, ("gain",), "forward")
    dims = [d for d in ("channel", "source", "orientation") if d in g.dims]
    arr = np.asarray(g.transpose(*dims).values, float)
    if arr.ndim == 3:
        src_norm = np.sqrt(np.sum(arr**2, axis=(0, 2)))
        ch_norm = np.sqrt(np.sum(arr**2, axis=(1, 2)))
    else:
        src_norm = np.linalg.norm(arr, axis=0)
        ch_norm = np.linalg.norm(arr, axis=1)
    src_pos = positions(ds, "source")
    try:
        ch_pos = positions(ds, "channel")
        ch_names = [str(c) for c in ds["channel"].values]
    except MissingInput:
        ch_names, ch_pos = _channels(ctx)
        if len(ch_names) != arr.shape[0]:
            raise
    center, _, _ = _sphere(ctx, ch_pos)
    ratio = float(src_norm.max() / max(src_norm.min(), 1e-300))
    parts = [
        dl(
            [
                (
                    "shape",
                    f"{arr.shape[0]} channels × {src_pos.shape[0]} sources"
                    + (f" × {arr.shape[2]} orientations" if arr.ndim == 3 else " (fixed)"),
                ),
                (
                    "source gain norm (V/(A·m))",
                    f"min {src_norm.min():.3g}, median {np.median(src_norm):.3g}, max {src_norm.max():.3g}",
                ),
                ("max/min sensitivity ratio", f"{ratio:.3g}"),
            ]
        )
    ]
    if not np.all(np.isfinite(arr)):
        res.status = "failed"
        parts.insert(0, notice("failed", "forward", "gain matrix contains non-finite values"))
    parts.append(
        ctx.img(
            lambda: F.fig_forward(ch_pos, center, ch_norm, src_pos, src_norm),
            "forward sensitivity",
        )
    )
    res.body = "\n".join(parts)
    return res


def _cov_arrays(ctx: _Ctx):
    ds = ctx.ds("cov", "noise covariance")
    c = data_var(ds, ("cov", "noise_cov", "covariance"), "noise covariance")
    names = [str(x) for x in c[c.dims[0]].values]
    return ds, np.asarray(c.values, float), names


def _sec_cov(ctx: _Ctx) -> _Result:
    res = _Result()
    ds, cov, names = _cov_arrays(ctx)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be square, has shape {cov.shape}")
    ev = np.sort(np.linalg.eigvalsh((cov + cov.T) / 2))[::-1]
    est = int(np.sum(ev > ev[0] * 1e-10)) if ev[0] > 0 else 0
    rank_attr, rank_src = None, " (estimated here from the eigenvalues)"
    for key, src in (("rank", ""), ("rank_estimated", " (estimated by the workflow)")):
        try:
            v = int(attr_json(ds, key, default=None))
        except (TypeError, ValueError):
            continue
        if v >= 0:  # -1: unknown
            rank_attr, rank_src = v, src
            break
    rank = rank_attr if rank_attr is not None else est
    ctx.summary["cov_rank"] = rank
    parts = [
        dl(
            [
                ("channels", len(names)),
                ("method", attr_json(ds, "method", default="not recorded")),
                ("degrees of freedom (nfree)", attr_json(ds, "nfree", default="not recorded")),
                ("rank", f"{rank}{rank_src}"),
                (
                    "condition number (within rank)",
                    f"{ev[0] / ev[max(rank - 1, 0)]:.3g}" if rank else "–",
                ),
            ]
        )
    ]
    if rank < len(names) - 5:
        res.warnings.append(f"covariance rank {rank} is low for {len(names)} channels")
    parts.append(ctx.img(lambda: F.fig_covariance(cov, ev, rank), "noise covariance"))
    # whitened baseline check
    curves, base_means = {}, {}
    base = None
    pos_of = {n: i for i, n in enumerate(names)}
    for cond in ctx.inputs.get("evokeds", {}):
        try:
            ev_ds = _get(ctx, ("evoked", cond))
        except (MissingInput, StepFailed, ValueError):
            continue
        da = data_var(ev_ds, ("evoked", "data", "ave"), "evoked")
        ev_names = [str(x) for x in da["channel"].values]
        common = [n for n in ev_names if n in pos_of]
        if len(common) < 2:
            continue
        x = np.asarray(da.sel(channel=common).transpose("channel", "time").values, float)
        idx = [pos_of[n] for n in common]
        nave = int(attr_json(ev_ds, "nave", default=1) or 1)
        g, _ = whitened_gfp(x, nave, cov[np.ix_(idx, idx)], min(rank, len(common) - 1))
        t = np.asarray(da["time"].values, float)
        label = _cond_label(ev_ds, cond)
        curves[label] = (t, g)
        bl = attr_json(ev_ds, "baseline", default=None) or ctx.summary.get("baseline")
        if bl is None and "cov_tmin" in ds.attrs:
            bl = [attr_json(ds, "cov_tmin"), attr_json(ds, "cov_tmax")]
        b0, b1 = (t[0], 0.0)
        if isinstance(bl, list | tuple) and len(bl) == 2:
            b0 = t[0] if bl[0] is None else float(bl[0])
            b1 = 0.0 if bl[1] is None else float(bl[1])
        base = (b0, b1)
        m = (t >= b0) & (t <= b1)
        if m.any():
            base_means[label] = float(np.mean(g[m]))
    if curves:
        parts.append(
            "<h3>Whitened baseline check</h3><p>Whitened GFP should stay near 1 in "
            "the baseline if the noise covariance describes the baseline noise; below 1 the "
            "covariance overestimates it (as regularisation does), above 1 it underestimates "
            "it (too few samples, non-stationary noise). Flagged outside 0.25&ndash;4.</p>"
        )
        parts.append(
            table(
                ["condition", "mean whitened GFP in baseline"],
                [[k, round(v, 3)] for k, v in base_means.items()],
            )
        )
        # < 1: the covariance overestimates the baseline noise (e.g. regularisation);
        # > 1: it underestimates it. Flag only large deviations.
        bad = {k: v for k, v in base_means.items() if not 0.25 <= v <= 4.0}
        for k, v in bad.items():
            res.warnings.append(f"whitened baseline GFP for {k} is {v:.2f} (expected ~1)")
        ctx.summary["white_gfp_baseline"] = (
            float(np.median(list(base_means.values()))) if base_means else None
        )
        parts.append(
            ctx.img(lambda: F.fig_whitened_gfp(curves, *(base or (None, None))), "whitened GFP")
        )
    else:
        parts.append(
            notice(
                "missing",
                "whitened baseline check",
                "no evoked data sharing channels with the covariance",
            )
        )
    res.body = "\n".join(parts)
    return res


def _blocks_status(res: _Result, failed: list, other: list, n_blocks: int, what: str) -> str:
    """Status of a section made of per-condition blocks.

    When some blocks failed but others are usable, the subject still has results:
    the section is a warning naming the failed blocks; when all failed, it failed.
    ``failed`` holds the names of failed blocks, ``other`` the non-ok statuses of
    the rest.
    """
    if failed and len(failed) < n_blocks:
        res.warnings.append(f"{len(failed)} of {n_blocks} {what} failed: {', '.join(failed)}")
        return worst_status([*other, "warning"])
    return worst_status(other + ["failed"] * len(failed))


def _sec_evokeds(ctx: _Ctx) -> _Result:
    res = _Result()
    conds = list(ctx.inputs.get("evokeds", {}))
    if not conds:
        raise MissingInput("no evoked files were given")
    parts, statuses, failed = [], [], []
    for cond in conds:
        try:
            ds = _get(ctx, ("evoked", cond))
            label = _cond_label(ds, cond)
            da = data_var(ds, ("evoked", "data", "ave"), "evoked").transpose("channel", "time")
            x = np.asarray(da.values, float)
            t = np.asarray(da["time"].values, float)
            gfp = x.std(axis=0)
            pk = gfp_peaks(t, gfp)
            try:
                pos = positions(ds, "channel")
            except MissingInput:
                names, pos_all = _channels(ctx)
                lut = dict(zip(names, pos_all, strict=True))
                pos = np.array([lut[str(c)] for c in da["channel"].values])
            center, _, _ = _sphere(ctx, pos)
            nave = attr_json(ds, "nave", default=None)
            parts.append(f"<h3>{esc(label)}</h3>")
            parts.append(
                dl(
                    [
                        ("epochs averaged (nave)", nave),
                        (
                            "peak GFP",
                            f"{gfp[pk].max() * 1e6:.3g} µV at "
                            + ", ".join(f"{t[i] * 1e3:.0f}" for i in pk)
                            + " ms",
                        ),
                    ]
                )
            )
            parts.append(
                ctx.img(
                    lambda x=x, t=t, gfp=gfp, pk=pk, label=label, pos=pos, center=center: (
                        F.fig_evoked_full(t, x, gfp, pk, pos, center, label)
                    ),
                    f"evoked {label}",
                )
            )
        except MissingInput as err:
            statuses.append("missing")
            parts.append(notice("missing", f"evoked {cond}", str(err)))
        except StepFailed as err:
            failed.append(str(cond))
            parts.append(notice("failed", f"evoked {cond}", str(err)))
        except Exception as err:  # noqa: BLE001 - shown in the report
            failed.append(str(cond))
            parts.append(notice("failed", f"evoked {cond}", f"{type(err).__name__}: {err}"))
    res.status = _blocks_status(res, failed, statuses, len(conds), "evoked responses")
    res.body = "\n".join(parts)
    return res


def _truth_for(ctx: _Ctx, cond_key, label, ds):
    """(positions (n_dip, 3) m, latency s or None) of the true dipoles, or (None, None)."""
    t = attr_json(ds, "true_pos", "truth_pos", default=None)
    if t is None:
        t = ctx.truth.get(label, ctx.truth.get(cond_key))
    if t is None:
        return None, None
    lat = None
    if isinstance(t, dict):
        lat = t.get("latency")
        t = t.get("pos", t.get("positions", t.get("rr")))
    try:
        arr = np.atleast_2d(np.asarray(t, float))
    except (TypeError, ValueError):
        return None, None
    if arr.shape[-1] != 3 or not arr.size:
        return None, None
    return arr, (None if lat is None else float(lat))


_SNR_NAMES = {"snr": "whitened-data SNR", "snr_est": "estimated SNR"}


def _snr_for(ctx: _Ctx, stc_ds, cond_key, label) -> dict:
    """SNR curves over time for a condition, from the stc file or the subject's ``snr.nc``.

    Returns
    -------
    dict of str -> ndarray (n_times,)
        Keys ``"snr"`` (whitened data) and/or ``"snr_est"`` (as MNE's
        ``estimate_snr``); empty if neither is available.
    """
    out = {}
    for v in _SNR_NAMES:
        if v in stc_ds.data_vars and stc_ds[v].dims == ("time",):
            out[v] = np.asarray(stc_ds[v].values, float)
    if out:
        return out
    snr = ctx.opt("snr")
    if snr is None or "condition" not in snr.dims:
        return out
    keys = [str(c) for c in snr["condition"].values]
    names = (
        [str(c) for c in snr["condition_name"].values] if "condition_name" in snr.coords else keys
    )
    for i, (k, n) in enumerate(zip(keys, names, strict=True)):
        if k == str(cond_key) or n == str(label):
            for v in _SNR_NAMES:
                if v in snr.data_vars and "time" in snr[v].dims:
                    out[v] = np.asarray(snr[v].isel(condition=i).values, float)
            break
    return out


def _sec_stcs(ctx: _Ctx) -> _Result:
    res = _Result()
    stcs = ctx.inputs.get("stcs", {})
    if not stcs:
        raise MissingInput("no source-estimate files were given")
    parts, statuses, rows, failed = [], [], [], []
    ctx.summary["peak_snr"] = {}
    ctx.summary["loc_error_true_mm"] = {}
    for cond, method in stcs:
        try:
            ds = _get(ctx, ("stc", cond, method))
            label = _cond_label(ds, cond)
            meth = str(attr_json(ds, "method", default=method))
            da = data_var(ds, ("stc", "data"), "source estimate")
            amp, signed = source_amplitude(da)
            t = np.asarray(da["time"].values, float)
            src_pos = positions(ds, "source")
            mag = np.abs(amp)
            post = t >= 0 if np.any(t >= 0) else np.ones_like(t, bool)
            sub = np.where(post[None, :], mag, -np.inf)
            i_src, i_t = np.unravel_index(int(np.argmax(sub)), sub.shape)
            peak = src_pos[i_src]
            unit = str(da.attrs.get("units", ""))
            truth, lat = _truth_for(ctx, cond, label, ds)
            err_mm = None
            if truth is not None:
                # peak near the true latency (+-50 ms) when it is known, else the global peak
                k = i_src
                if lat is not None:
                    win = np.abs(t - lat) <= 0.05
                    if win.any():
                        sub_w = np.where(win[None, :], mag, -np.inf)
                        k = np.unravel_index(int(np.argmax(sub_w)), sub_w.shape)[0]
                err_mm = float(np.min(np.linalg.norm(truth - src_pos[k], axis=1)) * 1e3)
                ctx.summary["loc_error_true_mm"][f"{label}/{meth}"] = err_mm
            snrs = _snr_for(ctx, ds, cond, label)
            snr = snrs.get("snr", snrs.get("snr_est"))
            if snr is not None:
                ctx.summary["peak_snr"][label] = float(np.nanmax(snr))
            rows.append(
                [
                    label,
                    meth,
                    round(t[i_t] * 1e3, 1),
                    ", ".join(f"{p * 1e3:.1f}" for p in peak),
                    float(mag[i_src, i_t]),
                    unit,
                    None if err_mm is None else round(err_mm, 1),
                    None if snr is None else round(float(np.nanmax(snr)), 2),
                ]
            )
            kind = " (contrast)" if "contrast" in ds.attrs else ""
            parts.append(f"<h3>{esc(label)}{kind} &mdash; {esc(meth)}</h3>")
            parts.append(
                ctx.img(
                    lambda amp=amp, i_src=i_src, i_t=i_t, t=t, snrs=snrs, mag=mag, peak=peak, truth=truth, unit=unit, src_pos=src_pos, label=label, meth=meth: (
                        F.fig_stc_full(
                            t,
                            amp[i_src],
                            {_SNR_NAMES[k]: v for k, v in snrs.items()},
                            src_pos,
                            mag[:, i_t],
                            title=f"{label} / {meth}: peak at {t[i_t] * 1e3:.0f} ms",
                            unit=unit,
                            mark=peak,
                            truth=truth,
                            peak_time=t[i_t],
                        )
                    ),
                    f"source estimate {label} {meth}",
                )
            )
            if snr is None:
                parts.append(
                    notice(
                        "missing",
                        "estimated SNR",
                        "no 'snr'/'snr_est' for this condition in the SNR or source-estimate files",
                    )
                )
        except MissingInput as err:
            statuses.append("missing")
            parts.append(notice("missing", f"source estimate {cond}/{method}", str(err)))
        except StepFailed as err:
            failed.append(f"{cond}/{method}")
            parts.append(notice("failed", f"source estimate {cond}/{method}", str(err)))
        except Exception as err:  # noqa: BLE001
            failed.append(f"{cond}/{method}")
            parts.append(
                notice(
                    "failed", f"source estimate {cond}/{method}", f"{type(err).__name__}: {err}"
                )
            )
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
    res.status = _blocks_status(res, failed, statuses, len(stcs), "source estimates")
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
    """{method: {metric: ndarray (n_src,) in display units}}."""
    out: dict = {}
    present = [m for m in _RES_METRICS if m in ds.data_vars]
    if not present:
        raise ValueError(f"resolution file has none of {list(_RES_METRICS)}")
    if "inverse_method" in ds.dims:
        methods = [str(m) for m in ds["inverse_method"].values]
    else:
        methods = [str(attr_json(ds, "method", default="method"))]
    for i, meth in enumerate(methods):
        out[meth] = {}
        for m in present:
            da = ds[m]
            if "inverse_method" in da.dims:
                da = da.isel(inverse_method=i)
            scale = _RES_METRICS[m][2]
            if m.endswith(("_err", "_ext")) and da.attrs.get("units") == "mm":
                scale = 1.0
            out[meth][m] = np.asarray(da.values, float) * scale
    return out


def _sec_resolution(ctx: _Ctx) -> _Result:
    res = _Result()
    ds = ctx.ds("resolution", "resolution")
    by = _resolution_by_method(ds)
    src_pos = positions(ds, "source")
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
    parts = [table(["method", "metric", "unit", "median", "90th percentile"], rows)]
    data = {m: {meth: by[meth][m] for meth in by} for m in metrics}
    parts.append(
        ctx.img(
            lambda: F.fig_distributions(
                data,
                {m: _RES_METRICS[m][0] for m in metrics},
                {m: _RES_METRICS[m][1] for m in metrics},
            ),
            "resolution distributions",
        )
    )
    parts.append("<h3>Maps over the source space (top view; rows: methods)</h3>")
    parts.append(
        ctx.img(
            lambda: F.fig_metric_maps_methods(
                src_pos,
                by,
                {m: _RES_METRICS[m][0] for m in metrics},
                {m: _RES_METRICS[m][1] for m in metrics},
            ),
            "resolution maps",
        )
    )
    res.body = "\n".join(parts)
    return res


def _short_sha(sha):
    """First 12 hex digits of a checksum, the full value in a tooltip."""
    if not sha:
        return None
    return (Markup(f'<code title="{esc(sha)}">{esc(str(sha)[:12])}&hellip;</code>'), str(sha))


def _sec_provenance(ctx: _Ctx) -> _Result:
    rows, inputs, sha_full = [], {}, set()
    keys = list(FILE_KINDS)
    keys += [("evoked", c) for c in ctx.inputs.get("evokeds", {})]
    keys += [("stc",) + k for k in ctx.inputs.get("stcs", {})]
    for key in keys:
        name = key if isinstance(key, str) else "/".join(map(str, key))
        try:
            ds = _get(ctx, key)
        except MissingInput:
            continue
        except (StepFailed, ValueError) as err:
            rows.append([name, Markup(status_badge("failed")), str(err), None, None, None])
            continue
        src = ds.encoding.get("source", "(in memory)")
        rows.append(
            [
                name,
                Markup(status_badge("ok")),
                Path(src).name,
                attr_json(ds, "created", default=None),
                attr_json(ds, "exgsrc_version", default=None),
                _short_sha(attr_json(ds, "config_sha256", default=None)),
            ]
        )
        sha_full.add(str(attr_json(ds, "config_sha256", default="")) or None)
        inp = attr_json(ds, "inputs", default=None)
        if inp:
            inputs[name] = inp
        params = {
            k: attr_json(ds, k)
            for k in ("method", "lambda2", "loose", "depth", "snr")
            if k in ds.attrs
        }
        if params:
            inputs.setdefault(name + " parameters", params)
    parts = [
        table(
            ["input", "status", "file", "created (UTC)", "exgsrc version", "config sha256"], rows
        )
    ]
    if ctx.config is not None:
        parts.append("<h3>Configuration</h3>")
        parts.append(pre_json(ctx.config))
    if inputs:
        parts.append("<details><summary>inputs and parameters per file</summary>")
        parts.append(pre_json(inputs))
        parts.append("</details>")
    shas = {x for x in sha_full if x}
    res = _Result(body="\n".join(parts))
    if len(shas) > 1:
        res.warnings.append(f"outputs come from {len(shas)} different configurations")
    return res


_SECTIONS = [
    ("data", "Data", _sec_data),
    ("head", "Head model", _sec_head),
    ("forward", "Forward model", _sec_forward),
    ("cov", "Noise covariance", _sec_cov),
    ("evokeds", "Evoked responses", _sec_evokeds),
    ("stcs", "Source estimates", _sec_stcs),
    ("resolution", "Resolution (PSF / CTF)", _sec_resolution),
    ("provenance", "Parameters and provenance", _sec_provenance),
]


def _run(ctx: _Ctx, failures: dict) -> tuple[list, str, list]:
    sections, reasons = [], []
    statuses = []
    for anchor, title, fn in _SECTIONS:
        if anchor in failures:
            r = _Result(status="failed", body=notice("failed", title, str(failures[anchor])))
        else:
            try:
                r = fn(ctx)
            except MissingInput as err:
                r = _Result(status="missing", body=notice("missing", title, str(err)))
            except StepFailed as err:
                r = _Result(status="failed", body=notice("failed", title, str(err)))
            except Exception as err:  # noqa: BLE001 - the report must still render
                r = _Result(
                    status="failed", body=notice("failed", title, f"{type(err).__name__}: {err}")
                )
        status = r.status
        if status == "ok" and r.warnings:
            status = "warning"
        body = "".join(notice("warning", title, w) for w in r.warnings)
        body += "".join(
            f'<div class="notice"><strong>note</strong> &mdash; {esc(w)}</div>' for w in r.notes
        )
        body += r.body
        sections.append((anchor, title, status, body))
        statuses.append(status)
        if status != "ok":
            why = r.warnings[0] if status == "warning" and r.warnings else _first_reason(r.body)
            reasons.append((status, f"{title}: {status}" + (f" ({why})" if why else "")))
        ctx.summary.setdefault("warnings", []).extend(
            f"{title}: {w}" for w in r.warnings + r.notes
        )
    # headline order: failures reported by the workflow, then sections by severity
    # (stable, so the earliest failing step - usually the root cause - comes first)
    extra = [
        f"{step}: failed ({why})"
        for step, why in failures.items()
        if step not in {a for a, _, _ in _SECTIONS}
    ]
    statuses += ["failed"] * len(extra)
    reasons.sort(key=lambda sr: -STATUS_ORDER.get(sr[0], 3))
    reasons = extra + [text for _, text in reasons]
    overall = worst_status(statuses)
    ctx.summary["status"] = overall
    ctx.summary["status_reasons"] = reasons
    ctx.summary["section_status"] = {a: s for a, _, s, _ in sections}
    return sections, overall, reasons


def _first_reason(body: str) -> str:
    import html
    import re

    m = re.search(r"&mdash; (.*?)</div>", body)
    return html.unescape(m.group(1)) if m else ""


#: single-file inputs of a subject, as keyword arguments of the report functions
FILE_KINDS = ("montage", "headmodel", "src", "fwd", "epochs", "cov", "inv", "snr", "resolution")


def _make_ctx(subject, task, files, evokeds, stcs, truth, config, figures) -> _Ctx:
    unknown = set(files) - set(FILE_KINDS)
    if unknown:
        raise ValueError(f"unknown input kind(s) {sorted(unknown)}; expected {FILE_KINDS}")
    inputs = {k: files.get(k) for k in FILE_KINDS}
    inputs.update(evokeds=dict(evokeds or {}), stcs=dict(stcs or {}))
    if truth is not None and not isinstance(truth, dict):
        truth = _read_truth(truth, subject)
    return _Ctx(
        subject=str(subject),
        task=task,
        inputs=inputs,
        truth=truth or {},
        config=config,
        figures=figures,
        summary={"subject": str(subject)},
    )


def _read_truth(path, subject=None) -> dict:
    """Read true dipoles per condition from a JSON file.

    Accepts the demo cohort's ``code/demo_truth.json`` (``{"subjects": {label:
    {"dipoles": {cond: {"pos": [x, y, z], "latency": s}}}}}``) as well as plain
    ``{cond: [[x, y, z], ...]}`` or ``{cond: {"pos": ...}}``. Positions in m.

    Returns
    -------
    dict of str -> dict with ``pos`` (list) and ``latency`` (float or None)
    """
    p = Path(path)
    if not p.is_file():
        return {}
    obj = json.loads(p.read_text())
    if not isinstance(obj, dict):
        return {}
    if "subjects" in obj:
        sub = str(subject).removeprefix("sub-")
        obj = (obj["subjects"].get(sub) or {}).get("dipoles", {})
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out[str(k)] = {"pos": v.get("pos", v.get("positions")), "latency": v.get("latency")}
        else:
            out[str(k)] = {"pos": v, "latency": None}
    return out


def subject_summary(
    subject,
    *,
    task=None,
    evokeds=None,
    stcs=None,
    truth=None,
    config=None,
    failures=None,
    **files,
) -> dict:
    """QC numbers of one subject (no figures), the row of the cohort table.

    Parameters
    ----------
    subject, task, evokeds, stcs, truth, config, failures, **files
        As in :func:`subject_report`.

    Returns
    -------
    dict
        ``subject``, ``status`` (ok/warning/missing/failed), ``status_reasons``,
        ``section_status``, ``n_channels``, ``n_excluded``, ``epochs``
        (condition -> kept), ``cov_rank``, ``white_gfp_baseline``, ``peak_snr``
        (condition -> max whitened-data SNR, else max estimated SNR), ``psf_peak_err_median_mm``
        (method -> mm), ``loc_error_true_mm`` ("cond/method" -> mm),
        ``warnings`` (list of str).
    """
    ctx = _make_ctx(subject, task, files, evokeds, stcs, truth, config, figures=False)
    _run(ctx, dict(failures or {}))
    return _jsonable(ctx.summary)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def subject_report(
    subject,
    *,
    task=None,
    evokeds=None,
    stcs=None,
    truth=None,
    config=None,
    failures=None,
    out=None,
    return_summary=False,
    **files,
):
    """Build the self-contained HTML QC report of one subject.

    Parameters
    ----------
    subject : str
        Subject label (shown escaped).
    task : str | None
    evokeds : dict of str -> path | Dataset
        Condition (path-safe label) -> evoked file (``*_ave.nc``).
    stcs : dict of (str, str) -> path | Dataset
        (condition, method) -> source-estimate file (``*_stc.nc``).
    truth : dict | path | None
        True dipoles per condition (simulated data): ``{cond: positions
        (n_dip, 3) m}`` or ``{cond: {"pos": ..., "latency": s}}``, or the demo
        cohort's ``demo_truth.json``.
    config : dict | None
        Configuration used, shown under provenance.
    failures : dict of str -> str | None
        Steps the workflow knows failed (section anchor or step name -> reason).
    out : path | None
        If given, the HTML is written there atomically (parent folders created).
    return_summary : bool
        Also return the summary dict of :func:`subject_summary`.
    **files : path | xarray.Dataset | None
        The subject's netCDF outputs by kind: ``montage``, ``headmodel``,
        ``src``, ``fwd``, ``epochs``, ``cov``, ``inv``, ``snr``,
        ``resolution`` (see the module docstring for what is read). Absent
        kinds render as "missing"; failed-step placeholders as "failed".

    Returns
    -------
    html : str
        The complete HTML document (and the summary if ``return_summary``).
    """
    ctx = _make_ctx(subject, task, files, evokeds, stcs, truth, config, figures=True)
    sections, overall, reasons = _run(ctx, dict(failures or {}))
    title = f"exgsrc report: sub-{ctx.subject}" + (f" task-{task}" if task else "")
    nav = " ".join(
        f'<span class="navitem">{status_badge(s)} <a href="#{esc(a)}">{esc(t)}</a></span>'
        for a, t, s, _ in sections
    )
    if not reasons:
        reason_txt = "all steps completed without warnings"
    elif len(reasons) <= 2:
        reason_txt = "; ".join(reasons)
    else:  # the first is usually the root cause; the rest follow from it
        reason_txt = f"{reasons[0]}; and {len(reasons) - 1} more (see the sections below)"
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<div class="statusline notice st-{overall}-bg" id="status">'
        f"<strong>Status: {status_badge(overall)}</strong> {esc(reason_txt)}</div>",
        f"<nav>{nav}</nav>",
    ]
    body += [section(a, t, b, s) for a, t, s, b in sections]
    html = render_page(title, body, out)
    return (html, _jsonable(ctx.summary)) if return_summary else html
