"""Per-subject QC report: one section per pipeline step, self-contained HTML.

Inputs are the workflow's netCDF outputs (paths or :class:`xarray.Dataset`).
Every section is built independently: a missing input renders a "missing"
block, an exception renders a "failed" block with the reason, and the rest of
the report is still produced. A file that records a failed step
(:func:`exgsrc.store.is_failed`) renders its section as failed with the recorded
reason.

The sections read exactly the names the workflow's steps write (see
:mod:`exgsrc.steps`); each section module says which:

- :mod:`~exgsrc.report.sec_data`: "Data" (montage, epochs);
- :mod:`~exgsrc.report.sec_model`: "Head model", "Forward model", "Noise
  covariance" (head model, forward, noise covariance, evoked responses);
- :mod:`~exgsrc.report.sec_sources`: "Evoked responses", "Source estimates",
  "Resolution (PSF / CTF)" (evoked responses, source estimates, SNR, resolution);
- :mod:`~exgsrc.report.sec_provenance`: "Parameters and provenance" (every file).

This module assembles them: the section order, the status line, the summary.
"""

from __future__ import annotations

import html as _html
import re

import numpy as np

from ._context import Ctx, Result, make_ctx
from ._data import failure_block
from ._html import STATUS_ORDER, esc, notice, render_page, section, status_badge, worst_status
from .sec_data import data_section
from .sec_model import covariance_section, forward_section, head_section, whitened_gfp
from .sec_provenance import provenance_section
from .sec_sources import evokeds_section, gfp_peaks, resolution_section, source_estimates_section

__all__ = ["subject_report", "subject_summary", "whitened_gfp", "gfp_peaks"]


_SECTIONS = [
    ("data", "Data", data_section),
    ("head", "Head model", head_section),
    ("forward", "Forward model", forward_section),
    ("cov", "Noise covariance", covariance_section),
    ("evokeds", "Evoked responses", evokeds_section),
    ("stcs", "Source estimates", source_estimates_section),
    ("resolution", "Resolution (PSF / CTF)", resolution_section),
    ("provenance", "Parameters and provenance", provenance_section),
]


def _run(ctx: Ctx, failures: dict) -> tuple[list, str, list]:
    sections, reasons = [], []
    statuses = []
    for anchor, title, fn in _SECTIONS:
        if anchor in failures:
            r = Result(status="failed", body=notice("failed", title, str(failures[anchor])))
        else:
            try:
                r = fn(ctx)
            except Exception as err:  # noqa: BLE001 - the report must still render
                r = Result(*failure_block(err, title))
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
    m = re.search(r"&mdash; (.*?)</div>", body)
    return _html.unescape(m.group(1)) if m else ""


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
        (condition -> max whitened-data SNR), ``psf_peak_err_median_mm``
        (method -> mm), ``loc_error_true_mm`` ("cond/method" -> mm),
        ``warnings`` (list of str).
    """
    ctx = make_ctx(subject, task, files, evokeds, stcs, truth, config, figures=False)
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
    ctx = make_ctx(subject, task, files, evokeds, stcs, truth, config, figures=True)
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
