"""Cohort report: a sortable, filterable table of every subject's QC numbers,
grand-average figures per condition and method, and outliers flagged against
the cohort's own distribution (robust z-score from median and MAD).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from . import _figures as F
from ._data import failure_block, load, stc_peak
from ._html import Markup, esc, fig_to_img, notice, render_page, status_badge, table, worst_status
from .statistics import statistics_sections

__all__ = ["cohort_report", "robust_z", "OUTLIER_Z"]

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

    The bad side says which deviation signals a problem and is flagged: ``"low"``
    (fewer channels or epochs, lower rank or SNR), ``"high"`` (more exclusions,
    larger localisation errors) or ``"both"`` (whitened GFP: 1 is right).
    """
    cols = [
        ("channels kept", "low", lambda s: s.get("n_channels")),
        ("channels excluded", "high", lambda s: s.get("n_excluded")),
    ]
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
    for c in conds:
        cols.append((f"epochs {c}", "low", lambda s, c=c: (s.get("epochs") or {}).get(c)))
    cols.append(("cov rank", "low", lambda s: s.get("cov_rank")))
    cols.append(("whitened baseline GFP", "both", lambda s: s.get("white_gfp_baseline")))
    for k in pairs:
        cols.append((f"max SNR {k}", "low", lambda s, k=k: (s.get("peak_snr") or {}).get(k)))
    for m in meths:
        cols.append(
            (
                f"median PSF peak error {m} (mm)",
                "high",
                lambda s, m=m: (s.get("psf_peak_err_median_mm") or {}).get(m),
            )
        )
    for m in truths:
        cols.append(
            (f"mean error to true dipoles {m} (mm)", "high", lambda s, m=m: _mean_err(s, m))
        )
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


def _grand_average_block(key, obj) -> tuple[str, str]:
    """Status and HTML of one grand average (``stc``, ``x, y, z`` on ``source``; attributes
    ``condition``, ``method``, ``n_subjects``, ``failed_subjects``, as
    :func:`exgsrc.steps.cohort.step_grand_average` writes them)."""
    cond, method = key
    try:
        ds = load(obj, f"grand average {cond}/{method}")
        pk = stc_peak(ds, "grand average")
        t, pos, i_src, i_t = pk.times, pk.pos, pk.i_src, pk.i_t
        label = str(ds.attrs.get("condition", cond))
        label += " (contrast)" if "contrast" in ds.attrs else ""
        meth = str(ds.attrs.get("method", method))
        n = ds.attrs.get("n_subjects")
        title = (
            f"{label} / {meth}: peak at {t[i_t] * 1e3:.0f} ms, "
            + ", ".join(f"{p * 1e3:.1f}" for p in pos[i_src])
            + " mm"
            + (f" (n={n})" if n else "")
        )
        img = fig_to_img(
            F.fig_grand_average(
                t, pk.amp[i_src], pos, pk.mag[:, i_t], title=title, unit=pk.unit, mark=pos[i_src]
            ),
            alt=f"grand average {label} {meth}",
        )
        failed = ds.attrs.get("failed_subjects")
        note = ""
        if isinstance(failed, dict) and failed:
            note = notice(
                "warning",
                "subjects left out of this average",
                "; ".join(f"sub-{k}: {v}" for k, v in failed.items()),
            )
        return "ok", f"<h3>{esc(label)} &mdash; {esc(meth)}</h3>{note}{img}"
    except Exception as err:  # noqa: BLE001 - shown in the report
        return failure_block(err, f"grand average {cond}/{method}")


def cohort_report(
    summaries: Sequence[Mapping],
    *,
    grand_averages: Mapping | None = None,
    links: Mapping | None = None,
    task: str | None = None,
    title: str | None = None,
    out=None,
    outlier_z: float = OUTLIER_Z,
) -> str:
    """Build the self-contained cohort QC report.

    Parameters
    ----------
    summaries : sequence of dict
        One :func:`exgsrc.report.subject_summary` dict per subject.
    grand_averages : dict of (condition, method) -> path | xarray.Dataset | None
        Grand-average source estimates (var ``stc``, dims source[, orientation], time).
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

    Returns
    -------
    html : str
    """
    links = dict(links or {})
    summaries = list(summaries)
    cols = _columns(summaries)
    values = np.array([[_num(get(s)) for _, _, get in cols] for s in summaries]).reshape(
        len(summaries), len(cols)
    )
    z = np.column_stack([robust_z(values[:, j]) for j in range(len(cols))]) if cols else values
    headers = ["subject", "status"] + [c[0] for c in cols] + ["outliers", "warnings"]
    rows, row_cls, outliers = [], [], []
    for i, s in enumerate(summaries):
        subj = str(s.get("subject", f"#{i}"))
        href = _safe_href(links.get(subj))
        cell = Markup(f'<a href="{esc(href)}">{esc(subj)}</a>') if href else esc(subj)
        status = str(s.get("status", "missing"))
        row = [(cell, subj), (Markup(status_badge(status)), status)]
        flags = []
        for j, (name, bad_side, _) in enumerate(cols):
            v = values[i, j]
            if np.isnan(v):
                row.append(None)
                continue
            txt = f"{v:.4g}"
            if len(summaries) >= 3 and _is_outlier(z[i, j], bad_side, outlier_z):
                flags.append(name)
                outliers.append((subj, name, v, z[i, j]))
                row.append(
                    (
                        Markup(
                            f'<span title="robust z = {z[i, j]:.3g}">{esc(txt)} &#9873;</span>'
                        ),
                        v,
                        "outlier",
                    )
                )
            else:
                row.append(v)
        row.append((esc("; ".join(flags)) if flags else None, len(flags)))
        warns = list(s.get("warnings") or []) + [
            r for r in (s.get("status_reasons") or []) if "warning" not in r
        ]
        row.append((Markup("<br>".join(esc(w) for w in warns)) if warns else None, len(warns)))
        rows.append(row)
        row_cls.append(f"st-row-{status}" if status != "ok" else "")
    tbl = table(headers, rows, table_id="cohort", sortable=True, row_classes=row_cls)
    statuses = [str(s.get("status", "missing")) for s in summaries]
    overall = worst_status(statuses) if statuses else "missing"
    n_ok = sum(st == "ok" for st in statuses)
    title = title or ("exgsrc cohort report" + (f": task-{task}" if task else ""))
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<div class="statusline notice st-{overall}-bg" id="status"><strong>Status: '
        f"{status_badge(overall)}</strong> {n_ok} of {len(summaries)} subjects ok, "
        f"{len(outliers)} outlying values (|robust z| &gt; {outlier_z:g}).</div>",
        '<nav><a href="#subjects">Subjects</a><a href="#outliers">Outliers</a>'
        '<a href="#grandavg">Grand averages</a></nav>',
        '<section id="subjects"><h2>Subjects</h2>'
        "<p>Click a column header to sort; type to filter rows. Values flagged &#9873; "
        "are outliers against the cohort (robust z from median and MAD) on the side "
        "that signals a problem: fewer channels, epochs, rank or SNR; more exclusions "
        "or larger localisation errors; whitened GFP either way.</p>"
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
        for key, obj in grand_averages.items():
            _, block = _grand_average_block(tuple(key), obj)
            body.append(block)
    else:
        body.append(notice("missing", "grand averages", "no grand-average files were given"))
    body.append("</section>")
    body.append(statistics_sections(out))  # cohort tests: *_stats.nc beside the report
    return render_page(title, body, out)
