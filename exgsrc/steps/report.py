"""Steps of ``report.smk``: one subject's QC report and the cohort's.

Both run through :func:`exgsrc.steps._run.run_step` like every other step (same
logging, same ``on_error`` policy). :func:`build_subject` and :func:`build_cohort`
do the work from plain paths, so they can be used and tested without Snakemake.

The details go to the job's log; each report step also prints one line to the
console (stderr): where the report is and what it found, so the person running
the workflow knows which report to open first.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..store import ERROR_ATTR, STATUS_ATTR, write_text_atomic
from ._run import StepContext, flatten

__all__ = ["build_cohort", "build_subject", "step_cohort_report", "step_subject_report"]

log = logging.getLogger("exgsrc")


def build_subject(
    subject: str,
    files: Iterable,
    out_html,
    out_summary=None,
    *,
    task: str | None = None,
    truth=None,
    config: Mapping | None = None,
    conditions: Mapping | None = None,
    options: Mapping | None = None,
) -> dict:
    """Write one subject's HTML report (and its JSON summary) from output-tree files.

    Parameters
    ----------
    subject : str
        Subject label without ``sub-``.
    files : iterable of path
        The subject's netCDF outputs; sorted by file name with
        :func:`exgsrc.report._data.classify_paths`.
    out_html, out_summary : path
        Destinations (the summary is the cohort table's row, JSON).
    task : str | None
    truth : path | dict | None
        Demo ground truth (``code/demo_truth.json``).
    config : mapping | None
        Workflow configuration, shown in the report.
    conditions : mapping | None
        Path-safe condition label -> original ``trial_type`` (display order).
    options : mapping | None
        The configuration's ``report`` section; None: ``config["report"]`` or the
        defaults.

    Returns
    -------
    dict
        The subject summary.
    """
    from ..report._data import classify_paths
    from ..report.subject import subject_report

    kw = classify_paths(files)
    if conditions:
        order = list(conditions)
        kw["evokeds"] = dict(sorted(kw["evokeds"].items(), key=lambda kv: _pos(order, kv[0])))
        kw["stcs"] = dict(sorted(kw["stcs"].items(), key=lambda kv: _pos(order, kv[0][0])))
    truth_file = kw.pop("truth", None)
    if truth is None:
        truth = truth_file
    _, summary = subject_report(
        subject,
        task=task,
        truth=truth,
        config=dict(config) if config is not None else None,
        options=options,
        out=out_html,
        return_summary=True,
        **kw,
    )
    summary["report"] = str(out_html)
    if out_summary is not None:
        write_text_atomic(out_summary, json.dumps(summary, indent=1, default=str))
    log.info("sub-%s report: status %s", subject, summary.get("status"))
    for w in summary.get("warnings") or []:
        log.info("  %s", w)
    return summary


def console_line(what: str, status: str, out_html, details: str = "") -> str:
    """One line for the console: what, its status, the counts, where the report is.

    Parameters
    ----------
    what : str
        E.g. ``"sub-01 report"``.
    status : str
    out_html : path
    details : str
        E.g. ``"2 warnings"``.

    Returns
    -------
    str
    """
    return f"exgsrc: {what}: {status}" + (f" ({details})" if details else "") + f" -> {out_html}"


def _say(line: str) -> None:
    """Print a line on the console (the job's stderr, which Snakemake shows) and log it."""
    log.info(line.removeprefix("exgsrc: "))
    print(line, file=sys.stderr, flush=True)


def _pos(order, key):
    return order.index(key) if key in order else len(order)


def _read_summary(path: Path) -> dict:
    """A subject's JSON summary; a failed row if it is unreadable or records a failed step."""
    sub = path.name.split("_")[0].removeprefix("sub-")
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {
            "subject": sub,
            "status": "failed",
            "status_reasons": [f"summary {path} unreadable: {err}"],
        }
    if s.get(STATUS_ATTR) == "failed":  # placeholder of a failed report step
        reason = f"report step failed: {s.get(ERROR_ATTR, 'no reason recorded')}"
        return {"subject": sub, "status": "failed", "status_reasons": [reason]}
    return s


def build_cohort(
    summary_files: Iterable,
    out_html,
    *,
    grand_averages: Mapping | None = None,
    task: str | None = None,
    subject_stcs: Mapping | None = None,
    src=None,
    truth=None,
    options: Mapping | None = None,
    shell_fraction: float = 0.7,
) -> str:
    """Write the cohort report from the subjects' JSON summaries and the grand averages.

    Parameters
    ----------
    summary_files : iterable of path
        JSON summaries written by :func:`build_subject`; a missing or unreadable
        one, or the placeholder of a failed subject report, becomes a "failed" row.
    out_html : path
        Destination; links to subject reports are relative to its folder.
    grand_averages : mapping of (condition, method) -> path | None
    task : str | None
    subject_stcs : mapping of (condition, method) -> mapping of subject -> path | None
        The subjects' source estimates (spread across subjects, their own peaks).
    src : path | list of path | None
        Source spaces (the triangles of the source surface).
    truth : path | None
        The demo's ``demo_truth.json``.
    options : mapping | None
        The configuration's ``report`` section.
    shell_fraction : float
        Source shell radius / scalp radius (``source_space.radius_fraction``).

    Returns
    -------
    str
        The HTML.
    """
    from ..report.cohort import cohort_report

    out_html = Path(out_html)
    summaries, links = [], {}
    for f in flatten(summary_files):
        s = _read_summary(Path(f))
        rep = s.get("report")
        if rep:
            links[str(s.get("subject"))] = os.path.relpath(rep, out_html.parent)
        summaries.append(s)
    return cohort_report(
        summaries,
        grand_averages=grand_averages,
        subject_stcs=subject_stcs,
        src=src,
        truth=truth,
        links=links,
        task=task,
        out=out_html,
        options=options,
        shell_fraction=shell_fraction,
    )


def step_subject_report(ctx: StepContext) -> None:
    """One subject's self-contained QC report and its JSON summary (rule ``report_subject``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs (the subject's output files), outputs (``html``,
        ``summary``) and params (``task``, ``conditions``, ``truth``, optional
        ``report``: the configuration's ``report`` section).
    """
    p = ctx.params
    s = build_subject(
        ctx.wildcards.subject,
        [f for f in flatten(ctx.input) if not f.endswith(".json")],
        ctx.output.html,
        ctx.output.summary,
        task=p.task,
        truth=p.truth,
        config=ctx.config,
        conditions=p.conditions,
        options=getattr(p, "report", None),
    )
    counts = [
        f"{n} {w}" + ("" if n == 1 else "s")
        for n, w in ((s.get("n_warnings", 0), "warning"), (s.get("n_notes", 0), "note"))
        if n
    ]
    _say(
        console_line(
            f"sub-{ctx.wildcards.subject} report",
            s.get("status"),
            ctx.output.html,
            ", ".join(counts),
        )
    )


def step_cohort_report(ctx: StepContext) -> None:
    """The cohort's QC report (rule ``report_cohort``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs (``summaries``, ``grandavg`` in condition x method
        order, optional ``stcs`` in subject x condition x method order and ``src``),
        output (``html``) and params (``task``, ``conditions``, ``methods``; optional
        ``subjects``, ``truth``, ``report``, ``shell_fraction``).
    """
    p = ctx.params
    keys = [(c, m) for c in p.conditions for m in p.methods]
    grand = dict(zip(keys, flatten(ctx.input.grandavg), strict=True))
    subject_stcs: dict = {k: {} for k in keys}
    stcs = flatten(getattr(ctx.input, "stcs", None))
    subjects = list(getattr(p, "subjects", None) or [])
    if stcs and len(stcs) == len(subjects) * len(keys):  # expand order: subject, cond, method
        it = iter(stcs)
        for sub in subjects:
            for k in keys:
                subject_stcs[k][sub] = next(it)
    build_cohort(
        ctx.input.summaries,
        ctx.output.html,
        grand_averages=grand,
        task=p.task,
        subject_stcs=subject_stcs,
        src=flatten(getattr(ctx.input, "src", None)),
        truth=getattr(p, "truth", None),
        options=getattr(p, "report", None),
        shell_fraction=float(getattr(p, "shell_fraction", None) or 0.7),
    )
    statuses = [_read_summary(Path(f)).get("status") for f in flatten(ctx.input.summaries)]
    n_warn, n_fail = statuses.count("warning"), len(statuses) - statuses.count("ok")
    n_fail -= n_warn
    n = len(statuses)
    detail = f"{n} subject{'' if n == 1 else 's'}" + "".join(
        f", {n} {w}" for n, w in ((n_warn, "with warnings"), (n_fail, "failed or missing")) if n
    )
    status = "failed" if n_fail else "warning" if n_warn else "ok"
    _say(console_line("cohort report", status, ctx.output.html, detail))
