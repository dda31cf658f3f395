"""Cohort report: a sortable, filterable table of every subject's QC numbers,
grand averages per condition and method with the spread across subjects, and
outliers flagged against the cohort's own distribution (robust z-score from
median and MAD).

The grand averages (``stc`` and ``stc_sd`` on ``source`` x ``time``, coordinates
``x, y, z``; attributes ``condition``, ``method``, ``n_subjects``,
``failed_subjects``, as :func:`exgsrc.steps.cohort.step_grand_average` writes them)
are drawn on the source surface (the triangles ``tris`` of a subject's source
space) from the standard views, with each subject's peak; the time course at the
group's peak source shows each subject (the subjects' source estimates, ``stc``),
the mean and its 95 % interval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from . import _figmaps as M
from . import _figures as F
from ._data import MissingInput, StepFailed, failure_block, load, source_amplitude, stc_peak, xyz
from ._html import Markup, esc, fig_to_img, notice, render_page, status_badge, table, worst_status
from ._options import Options
from .statistics import statistics_sections

__all__ = ["cohort_report", "robust_z", "t_quantile", "OUTLIER_Z"]

#: |robust z| above which a subject's value is flagged (Iglewicz & Hoaglin's 3.5).
OUTLIER_Z = 3.5


def robust_z(values) -> np.ndarray:
    """Robust z-scores ``0.6745 (x - median) / MAD`` (NaN-aware).

    Parameters
    ----------
    values : array-like, shape (n,)

    Returns
    -------
    z : ndarray, shape (n,)
        NaN where the value is NaN; 0 everywhere if the MAD is 0 and the value
        equals the median, ``±inf`` if the MAD is 0 and it does not.
    """
    x = np.asarray(values, float)
    ok = np.isfinite(x)
    z = np.full(x.shape, np.nan)
    if not ok.any():
        return z
    med = np.median(x[ok])
    mad = np.median(np.abs(x[ok] - med))
    dev = x[ok] - med
    if mad > 0:
        z[ok] = 0.6745 * dev / mad
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            z[ok] = np.where(dev == 0, 0.0, np.sign(dev) * np.inf)
    return z


def _columns(summaries: Sequence[Mapping]) -> list[tuple[str, str, callable]]:
    """(header, bad side, getter) for every numeric QC column present in the cohort.

    In the order a reader needs them: the data kept (epochs per condition), whether
    the noise model fits (whitened baseline GFP), the signal (SNR per condition), the
    localisation (error to the true dipoles, simulated data), the spatial resolution,
    then the channels and the covariance rank.

    The bad side says which deviation signals a problem and is flagged: ``"low"``
    (fewer channels or epochs, lower rank or SNR), ``"high"`` (more exclusions,
    larger localisation errors) or ``"both"`` (whitened GFP: 1 is right).
    """
    conds, pairs, meths, truths = [], [], [], []
    for s in summaries:
        for c in s.get("epochs") or {}:
            conds.append(c) if c not in conds else None
        for k in s.get("peak_snr") or {}:
            pairs.append(k) if k not in pairs else None
        for k in s.get("psf_peak_err_median_mm") or {}:
            meths.append(k) if k not in meths else None
        for k in s.get("loc_error_true_mm") or {}:
            m = k.rsplit("/", 1)[-1]
            truths.append(m) if m not in truths else None
    cols = [(f"epochs {c}", "low", lambda s, c=c: (s.get("epochs") or {}).get(c)) for c in conds]
    cols.append(
        ("whitened baseline GFP (worst condition)", "both", lambda s: s.get("white_gfp_baseline"))
    )
    for k in pairs:
        cols.append((f"max SNR {k}", "low", lambda s, k=k: (s.get("peak_snr") or {}).get(k)))
    for m in truths:
        cols.append(
            (f"mean error to true dipoles {m} (mm)", "high", lambda s, m=m: _mean_err(s, m))
        )
    for m in meths:
        cols.append(
            (
                f"median PSF peak error {m} (mm)",
                "high",
                lambda s, m=m: (s.get("psf_peak_err_median_mm") or {}).get(m),
            )
        )
    cols += [
        ("channels kept", "low", lambda s: s.get("n_channels")),
        ("channels excluded", "high", lambda s: s.get("n_excluded")),
        ("cov rank", "low", lambda s: s.get("cov_rank")),
    ]
    return cols


def _is_outlier(z: float, bad_side: str, threshold: float) -> bool:
    """Whether a robust z-score deviates beyond ``threshold`` on the column's bad side."""
    if bad_side == "high":
        return z > threshold
    if bad_side == "low":
        return z < -threshold
    return abs(z) > threshold


def _mean_err(summary, method):
    """Mean over conditions of the peak-to-true-dipole distance (mm) for one method."""
    errs = [
        float(v)
        for k, v in (summary.get("loc_error_true_mm") or {}).items()
        if k.rsplit("/", 1)[-1] == method and v is not None
    ]
    return float(np.mean(errs)) if errs else None


def _safe_href(href):
    """A relative link, or None: anything with a URL scheme (``javascript:``...) is dropped."""
    if not href:
        return None
    href = str(href).replace("\\", "/")
    if re.match(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*:", href) or href.startswith("//"):
        return None
    return href


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


#: two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t (half-width of a 95 % interval in SEs).

    Parameters
    ----------
    df : int
        Degrees of freedom (>= 1).

    Returns
    -------
    float
        From a table up to 30, beyond it Cornish-Fisher's first correction to 1.96.
    """
    df = int(df)
    if df < 1:
        raise ValueError("t_quantile needs df >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df)


def _geometry(src, pos, shell_fraction):
    """Triangles (a source space with the same number of sources), centre, scalp radius."""
    tris = None
    for obj in src if isinstance(src, list | tuple) else [src]:
        try:
            ds = load(obj, "source space")
        except (MissingInput, StepFailed, ValueError):
            continue
        if "tris" in ds.variables and ds.sizes.get("source") == len(pos):
            tris = np.asarray(ds["tris"].values, int)
            break
    center = np.asarray(pos, float).mean(axis=0)
    r_src = float(np.max(np.linalg.norm(pos - center, axis=1)))
    return tris, center, r_src / float(shell_fraction)


def _subjects(files: Mapping, n_src: int, n_t: int, window, truth_cond):
    """Each readable subject's |estimate| (source x time), peak source, truth source."""
    mags, peaks, truth_idx, skipped = {}, {}, {}, {}
    for sub, obj in (files or {}).items():
        try:
            ds = load(obj, f"source estimate of sub-{sub}")
            amp, _ = source_amplitude(ds["stc"])
        except Exception as err:  # noqa: BLE001 - the subject is left out, with the reason
            skipped[sub] = str(err)
            continue
        if amp.shape != (n_src, n_t):
            skipped[sub] = f"shape {amp.shape} differs from the grand average's"
            continue
        mag = np.abs(amp)
        t = np.asarray(ds["time"].values, float)
        win = (t >= window[0]) & (t <= window[1])
        sub_w = np.where(win[None, :], mag, -np.inf) if win.any() else mag
        peaks[sub] = int(np.unravel_index(int(np.argmax(sub_w)), sub_w.shape)[0])
        mags[sub] = mag
        dip = (truth_cond or {}).get(str(sub))
        if dip is not None:
            own = xyz(ds, "source")
            truth_idx[sub] = int(np.argmin(np.linalg.norm(own - np.asarray(dip, float), axis=1)))
    return mags, peaks, truth_idx, skipped


def _grand_average_block(key, obj, subj_files, src, truth, opts: Options, shell_fraction):
    """Status and HTML of one grand average: time course with the subjects, maps, peaks."""
    cond, method = key
    try:
        ds = load(obj, f"grand average {cond}/{method}")
        t = np.asarray(ds["time"].values, float)
        win = opts.window(t)
        pk = stc_peak(ds, "grand average", window=win)
        pos, i_src, i_t = pk.pos, pk.i_src, pk.i_t
        label = str(ds.attrs.get("condition", cond))
        label += " (contrast)" if "contrast" in ds.attrs else ""
        meth = str(ds.attrs.get("method", method))
        n = ds.attrs.get("n_subjects")
        truth_cond = {s: d.get(label, d.get(cond)) for s, d in (truth or {}).items()}
        mags, peaks, truth_idx, skipped = _subjects(subj_files, len(pos), len(t), win, truth_cond)
        tc = {
            "times": t,
            "curves": [(f"mean (n={n})" if n else "mean", pk.amp[i_src])],
            "ylabel": f"|{meth}| ({pk.unit})" if pk.unit else f"|{meth}|",
            "marks": [t[i_t]],
            "window": win,
            "title": f"at the group's peak source ({_where(pos[i_src], pos)})",
        }
        k = len(mags)
        if k >= 2:
            curves = np.array([m[i_src] for m in mags.values()])
            tc["subjects"] = curves
            half = t_quantile(k - 1) * curves.std(axis=0, ddof=1) / np.sqrt(k)
            mean = curves.mean(axis=0)
            tc["band"], tc["band_label"] = (mean - half, mean + half), "95 % interval of the mean"
        elif "stc_sd" in ds.data_vars and n and int(n) >= 2:
            sd = np.abs(source_amplitude(ds["stc_sd"])[0][i_src])
            half = t_quantile(int(n) - 1) * sd / np.sqrt(int(n))
            tc["band"] = (pk.amp[i_src] - half, pk.amp[i_src] + half)
            tc["band_label"] = "95 % interval of the mean"
        others = pos[list(peaks.values())] if peaks else None
        true_pos = pos[list(truth_idx.values())] if truth_idx else None
        tris, center, radius = _geometry(src, pos, shell_fraction)
        with F.styled():
            img = fig_to_img(
                M.fig_source_maps(
                    pos,
                    tris,
                    center,
                    radius,
                    [
                        {
                            "label": f"{t[i_t] * 1e3:.0f} ms",
                            "values": pk.mag[:, i_t],
                            "peak": pos[i_src],
                        }
                    ],
                    views=opts.views,
                    unit_label=f"mean |{meth}| ({pk.unit})" if pk.unit else f"mean |{meth}|",
                    truth=true_pos,
                    others=others,
                    peak_label="group peak",
                    tc=tc,
                ),
                alt=f"grand average {label} {meth}",
            )
        spread = _spread_text(pos, i_src, peaks)
        failed = ds.attrs.get("failed_subjects")
        note = ""
        if isinstance(failed, dict) and failed:
            note = notice(
                "warning",
                "subjects left out of this average",
                "; ".join(f"sub-{k}: {v}" for k, v in failed.items()),
            )
        if skipped:
            note += notice(
                "missing",
                "subjects not drawn",
                "; ".join(f"sub-{k}: {v}" for k, v in skipped.items()),
            )
        head = (
            f"<h3>{esc(label)} &mdash; {esc(meth)}</h3>"
            f'<p class="caption">Group peak at {t[i_t] * 1e3:.0f} ms, '
            f"{esc(_where(pos[i_src], pos))}{esc(spread)}.</p>"
        )
        return "ok", f"{head}{note}{img}"
    except Exception as err:  # noqa: BLE001 - shown in the report
        return failure_block(err, f"grand average {cond}/{method}")


def _where(p, pos) -> str:
    """Rough place of a template position (hemisphere and area, from the shell's centre)."""
    from ._context import region_name

    return region_name(p, np.asarray(pos, float).mean(axis=0))


def _spread_text(pos, i_src, peaks) -> str:
    """How far the subjects' own peaks lie from the group's (median, mm)."""
    if len(peaks) < 2:
        return ""
    d = np.linalg.norm(pos[list(peaks.values())] - pos[i_src], axis=1) * 1e3
    return (
        f"; the {len(peaks)} subjects' own peaks (white dots) lie a median "
        f"{np.median(d):.0f} mm from it (max {np.max(d):.0f} mm)"
    )


def _read_truth(truth) -> dict:
    """{subject: {condition: position (3,) m}} from the demo's truth (dict or JSON path)."""
    import json
    from pathlib import Path

    if truth is None:
        return {}
    if not isinstance(truth, Mapping):
        p = Path(truth)
        if not p.is_file():
            return {}
        truth = json.loads(p.read_text())
    out = {}
    for sub, d in (truth.get("subjects") or {}).items():
        dips = (d or {}).get("dipoles") or {}
        out[str(sub)] = {str(c): v.get("pos") for c, v in dips.items() if isinstance(v, dict)}
    return out


def _warn_cell(s) -> tuple:
    """Warnings of a subject as a collapsed list (count in the summary line)."""
    warns = list(s.get("warnings") or []) + [
        r for r in (s.get("status_reasons") or []) if "warning" not in r
    ]
    if not warns:
        return (None, 0, "wrap")
    items = "".join(f"<li>{esc(w)}</li>" for w in warns)
    what = f"{len(warns)} item" + ("" if len(warns) == 1 else "s")
    return (
        Markup(f"<details><summary>{what}</summary><ul>{items}</ul></details>"),
        len(warns),
        "wrap",
    )


def _banner(summaries, outliers, outlier_z) -> str:
    """Cohort status line: counts per status, the subjects that are not ok, outliers."""
    statuses = [str(s.get("status", "missing")) for s in summaries]
    overall = worst_status(statuses) if statuses else "missing"
    counts = {k: statuses.count(k) for k in ("ok", "warning", "missing", "failed")}
    head = f"{len(summaries)} subjects: " + ", ".join(
        f"{v} {k}" for k, v in counts.items() if v or k == "ok"
    )
    head += f"; {len(outliers)} outlying value" + ("" if len(outliers) == 1 else "s")
    head += f" (|robust z| > {outlier_z:g})"
    items = []
    for s, st in zip(summaries, statuses, strict=True):
        if st == "ok":
            continue
        why = list(s.get("status_reasons") or []) or list(s.get("warnings") or [])
        items.append(
            f"<li>sub-{esc(s.get('subject', '?'))}: {esc(st)}"
            + (f" &mdash; {esc(why[0])}" if why else "")
            + (f" (and {len(why) - 1} more)" if len(why) > 1 else "")
            + "</li>"
        )
    lst = f"<ol>{''.join(items[:12])}</ol>" if items else ""
    if len(items) > 12:
        lst = lst[:-5] + f"<li>and {len(items) - 12} more in the table</li></ol>"
    return (
        f'<div class="statusline notice st-{overall}-bg" id="status"><strong>Status: '
        f"{status_badge(overall)}</strong> {esc(head)}{lst}</div>"
    )


def cohort_report(
    summaries: Sequence[Mapping],
    *,
    grand_averages: Mapping | None = None,
    subject_stcs: Mapping | None = None,
    src=None,
    truth=None,
    links: Mapping | None = None,
    task: str | None = None,
    title: str | None = None,
    out=None,
    outlier_z: float = OUTLIER_Z,
    options=None,
    shell_fraction: float = 0.7,
) -> str:
    """Build the self-contained cohort QC report.

    Parameters
    ----------
    summaries : sequence of dict
        One :func:`exgsrc.report.subject_summary` dict per subject.
    grand_averages : dict of (condition, method) -> path | xarray.Dataset | None
        Grand-average source estimates (var ``stc``, dims source[, orientation], time).
    subject_stcs : dict of (condition, method) -> dict of subject -> path | Dataset
        The subjects' source estimates: their time courses at the group's peak
        source, their own peaks on the map, the 95 % interval of the mean.
    src : path | Dataset | list | None
        A source space (or several; the first with the grand averages' number of
        sources is used) whose triangles ``tris`` draw the source surface; None:
        maximum-intensity projections.
    truth : path | dict | None
        The demo's ``demo_truth.json`` (true dipoles per subject and condition),
        drawn as rings.
    links : dict of subject -> str | None
        Relative URL of each subject's report (from the cohort report's folder).
    task : str | None
    title : str | None
    out : path | None
        If given, the HTML is also written there (atomically).
    outlier_z : float
        Robust z threshold for flagging a value; only deviations on a column's
        bad side are flagged (e.g. a localisation error far *below* the cohort's
        is not a problem).
    options : mapping | None
        The ``report`` options (response window, views); None: defaults.
    shell_fraction : float
        Source shell radius / scalp radius, to draw the head outline around the
        template source space (``source_space.radius_fraction`` of the workflow).

    Returns
    -------
    html : str
    """
    opts = Options.from_config(options)
    links = dict(links or {})
    summaries = list(summaries)
    cols = _columns(summaries)
    values = np.array([[_num(get(s)) for _, _, get in cols] for s in summaries]).reshape(
        len(summaries), len(cols)
    )
    z = np.column_stack([robust_z(values[:, j]) for j in range(len(cols))]) if cols else values
    headers = ["subject", "status", "flags"] + [c[0] for c in cols] + ["warnings and notes"]
    rows, row_cls, outliers = [], [], []
    for i, s in enumerate(summaries):
        subj = str(s.get("subject", f"#{i}"))
        href = _safe_href(links.get(subj))
        cell = Markup(f'<a href="{esc(href)}">{esc(subj)}</a>') if href else esc(subj)
        status = str(s.get("status", "missing"))
        row = [(cell, subj), (Markup(status_badge(status)), status)]
        flags, cells = [], []
        for j, (name, bad_side, _) in enumerate(cols):
            v = values[i, j]
            if np.isnan(v):
                cells.append(None)
                continue
            txt = f"{v:.4g}"
            if len(summaries) >= 3 and _is_outlier(z[i, j], bad_side, outlier_z):
                flags.append(name)
                outliers.append((subj, name, v, z[i, j]))
                cells.append(
                    (
                        Markup(
                            f'<span title="robust z = {z[i, j]:.3g}">{esc(txt)} &#9873;</span>'
                        ),
                        v,
                        "outlier",
                    )
                )
            else:
                cells.append(v)
        row.append((esc("; ".join(flags)) if flags else None, len(flags), "wrap-s"))
        row += cells
        row.append(_warn_cell(s))
        rows.append(row)
        row_cls.append(f"st-row-{status}" if status != "ok" else "")
    tbl = table(
        headers, rows, table_id="cohort", sortable=True, row_classes=row_cls, box="tablebox"
    )
    title = title or ("exgsrc cohort report" + (f": task-{task}" if task else ""))
    stats_html = statistics_sections(out)  # cohort tests: *_stats.nc beside the report
    body = [
        f"<h1>{esc(title)}</h1>",
        _banner(summaries, outliers, outlier_z),
        '<nav><a href="#subjects">Subjects</a><a href="#outliers">Outliers</a>'
        '<a href="#grandavg">Grand averages</a>'
        + ('<a href="#statistics">Statistics</a>' if stats_html else "")
        + "</nav>",
        '<section id="subjects"><h2>Subjects</h2>'
        '<p class="caption">Click a column header to sort; type to filter rows; the '
        "table scrolls inside its box (subject names stay on the left). Values flagged "
        "&#9873; are outliers against the cohort (robust z from median and MAD) on the "
        "side that signals a problem: fewer channels, epochs, rank or SNR; more "
        "exclusions or larger localisation errors; whitened GFP either way.</p>"
        '<input class="filter" type="search" data-table="cohort" '
        'placeholder="filter subjects..." aria-label="filter subjects">',
        tbl,
        "</section>",
        '<section id="outliers"><h2>Outliers</h2>',
    ]
    if len(summaries) < 3:
        body.append(notice("missing", "outlier detection", "fewer than 3 subjects"))
    elif outliers:
        body.append(
            table(
                ["subject", "measure", "value", "robust z"],
                [[s, n, v, round(float(zz), 2)] for s, n, v, zz in outliers],
            )
        )
    else:
        body.append(
            "<p>No value deviates from the cohort by more than "
            f"{outlier_z:g} robust standard deviations.</p>"
        )
    body.append('</section><section id="grandavg"><h2>Grand averages</h2>')
    if grand_averages:
        body.append(
            '<p class="caption">Per condition and method: the mean over subjects of '
            "the estimate at the group's peak source (each subject a thin grey line, the "
            "95 % interval of the mean shaded), and the grand-average map at the group "
            "peak (blue star) from the left, right, top and back, with each subject's "
            "own peak (white dots) and, for simulated data, the true dipoles (rings). "
            "Peaks are searched in the response window (yellow).</p>"
        )
        truth_by_sub = _read_truth(truth)
        for key, obj in grand_averages.items():
            key = tuple(key)
            _, block = _grand_average_block(
                key,
                obj,
                (subject_stcs or {}).get(key),
                src,
                truth_by_sub,
                opts,
                shell_fraction,
            )
            body.append(block)
    else:
        body.append(notice("missing", "grand averages", "no grand-average files were given"))
    body.append("</section>")
    body.append(stats_html)
    return render_page(title, body, out)
