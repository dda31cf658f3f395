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


def _run(ctx: Ctx, failures: dict) -> tuple[list, str, list, list]:
    """Build every section; returns them, the overall status, the reasons and the issues.

    The issues are ``(anchor, title, kind, text)`` with kind ``failed``, ``missing``,
    ``warning`` or ``note``, in the order the banner lists them.
    """
    sections, reasons, issues = [], [], []
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
        if status in ("failed", "missing"):
            why = _first_reason(r.body)
            issues.append((anchor, title, status, why or status))
        issues += [(anchor, title, "warning", w) for w in r.warnings]
        issues += [(anchor, title, "note", w) for w in r.notes]
        if status != "ok":
            why = r.warnings[0] if status == "warning" and r.warnings else _first_reason(r.body)
            reasons.append((status, f"{title}: {status}" + (f" ({why})" if why else "")))
        ctx.summary.setdefault("warnings", []).extend(
            f"{title}: {w}" for w in r.warnings + r.notes
        )
    # headline order: failures reported by the workflow, then sections by severity
    # (stable, so the earliest failing step - usually the root cause - comes first)
    known = {a for a, _, _ in _SECTIONS}
    extra = [f"{step}: failed ({why})" for step, why in failures.items() if step not in known]
    issues = [
        (None, step, "failed", str(why)) for step, why in failures.items() if step not in known
    ] + sorted(issues, key=lambda i: -_ISSUE_ORDER[i[2]])
    statuses += ["failed"] * len(extra)
    reasons.sort(key=lambda sr: -STATUS_ORDER.get(sr[0], 3))
    reasons = extra + [text for _, text in reasons]
    overall = worst_status(statuses)
    ctx.summary["status"] = overall
    ctx.summary["status_reasons"] = reasons
    ctx.summary["section_status"] = {a: s for a, _, s, _ in sections}
    ctx.summary["n_warnings"] = sum(i[2] == "warning" for i in issues)
    ctx.summary["n_notes"] = sum(i[2] == "note" for i in issues)
    return sections, overall, reasons, issues


_ISSUE_ORDER = {"failed": 3, "missing": 2, "warning": 1, "note": 0}

#: issues listed in the banner; the rest are counted
_BANNER_ITEMS = 8


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def banner(overall: str, issues: list) -> str:
    """The status line: the status, what is counted, and every issue named, linked.

    Parameters
    ----------
    overall : str
        The subject's status.
    issues : list of (anchor, title, kind, text)
        As :func:`_run` returns them.

    Returns
    -------
    str
        HTML.
    """
    count = {k: sum(i[2] == k for i in issues) for k in _ISSUE_ORDER}
    bits = []
    for k, word in (
        ("failed", "failed step"),
        ("missing", "missing input"),
        ("warning", "warning"),
    ):
        if count[k]:
            bits.append(_plural(count[k], word))
    if count["note"]:
        bits.append(_plural(count["note"], "note") + " (information, not a problem by itself)")
    if overall == "ok" and not count["warning"]:
        head = "all steps completed without warnings" + (f"; {bits[-1]}" if bits else "")
    else:
        head = ", ".join(bits) if bits else overall
    items = []
    for anchor, title, kind, text in issues[:_BANNER_ITEMS]:
        where = f'<a href="#{esc(anchor)}">{esc(title)}</a>' if anchor else esc(title)
        items.append(f"<li>{esc(kind)}: {where} &mdash; {esc(text)}</li>")
    if len(issues) > _BANNER_ITEMS:
        items.append(f"<li>and {len(issues) - _BANNER_ITEMS} more in the sections below</li>")
    lst = f"<ol>{''.join(items)}</ol>" if items else ""
    return (
        f'<div class="statusline notice st-{overall}-bg" id="status">'
        f"<strong>Status: {status_badge(overall)}</strong> {esc(head)}{lst}</div>"
    )


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
    options=None,
    **files,
) -> dict:
    """QC numbers of one subject (no figures), the row of the cohort table.

    Parameters
    ----------
    subject, task, evokeds, stcs, truth, config, failures, options, **files
        As in :func:`subject_report`.

    Returns
    -------
    dict
        ``subject``, ``status`` (ok/warning/missing/failed), ``status_reasons``,
        ``section_status``, ``n_channels``, ``n_excluded``, ``epochs``
        (condition -> kept), ``cov_rank``, ``white_gfp_baseline`` (mean whitened GFP
        in the baseline of the condition farthest from 1), ``peak_snr``
        (condition -> max whitened-data SNR), ``psf_peak_err_median_mm``
        (method -> mm), ``loc_error_true_mm`` ("cond/method" -> mm),
        ``warnings`` (list of str), ``n_warnings``, ``n_notes``.
    """
    ctx = make_ctx(subject, task, files, evokeds, stcs, truth, config, False, options)
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
    options=None,
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
    options : mapping | None
        The ``report`` options (response window, baseline GFP limits, views, slider
        frames; see ``workflow/schemas/config.schema.yaml``); None: those in
        ``config``, else the defaults.
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
    ctx = make_ctx(subject, task, files, evokeds, stcs, truth, config, True, options)
    sections, overall, _, issues = _run(ctx, dict(failures or {}))
    title = f"exgsrc report: sub-{ctx.subject}" + (f" task-{task}" if task else "")
    nav = " ".join(
        f'<span class="navitem">{status_badge(s)} <a href="#{esc(a)}">{esc(t)}</a></span>'
        for a, t, s, _ in sections
    )
    body = [f"<h1>{esc(title)}</h1>", banner(overall, issues), f"<nav>{nav}</nav>"]
    body += [section(a, t, b, s) for a, t, s, b in sections]
    html = render_page(title, body, out)
    return (html, _jsonable(ctx.summary)) if return_summary else html
