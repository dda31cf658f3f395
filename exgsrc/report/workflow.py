"""Glue between Snakemake's ``snakemake`` object and the report builders.

The workflow scripts ``workflow/scripts/report_subject.py`` and
``report_cohort.py`` are one line each; the logic lives here so it can be
tested without Snakemake.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..store import write_text_atomic

__all__ = ["run_subject_report", "run_cohort_report", "build_subject", "build_cohort"]

log = logging.getLogger("exgsrc.report")


def _flatten(x) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str | os.PathLike):
        return [str(x)]
    out = []
    for v in x:
        out += _flatten(v)
    return out


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
    truth : path | dict | None
        Demo ground truth (``code/demo_truth.json``).
    config : mapping | None
        Workflow configuration, shown in the report.
    conditions : mapping | None
        Path-safe condition label -> original ``trial_type`` (display order).

    Returns
    -------
    dict
        The subject summary.
    """
    from ._data import classify_paths
    from .subject import subject_report

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
        out=out_html,
        return_summary=True,
        **kw,
    )
    summary["report"] = str(out_html)
    if out_summary is not None:
        write_text_atomic(out_summary, json.dumps(summary, indent=1, default=str))
    log.info("sub-%s report: status %s", subject, summary.get("status"))
    return summary


def _pos(order, key):
    return order.index(key) if key in order else len(order)


def build_cohort(
    summary_files: Iterable,
    out_html,
    *,
    grand_averages: Mapping | None = None,
    task: str | None = None,
) -> str:
    """Write the cohort report from the subjects' JSON summaries and the grand averages.

    Parameters
    ----------
    summary_files : iterable of path
        JSON summaries written by :func:`build_subject`; a missing or unreadable
        one becomes a "failed" row.
    out_html : path
        Destination; links to subject reports are relative to its folder.
    grand_averages : mapping of (condition, method) -> path | None

    Returns
    -------
    str
        The HTML.
    """
    from .cohort import cohort_report

    out_html = Path(out_html)
    summaries, links = [], {}
    for f in _flatten(summary_files):
        p = Path(f)
        try:
            s = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            sub = p.name.split("_")[0].removeprefix("sub-")
            s = {
                "subject": sub,
                "status": "failed",
                "status_reasons": [f"summary {p} unreadable: {err}"],
            }
        rep = s.get("report")
        if rep:
            links[str(s.get("subject"))] = os.path.relpath(rep, out_html.parent)
        summaries.append(s)
    return cohort_report(
        summaries, grand_averages=grand_averages, links=links, task=task, out=out_html
    )


def _setup_log(snakemake) -> None:
    logfile = _flatten(getattr(snakemake, "log", None))
    if logfile:
        Path(logfile[0]).parent.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(
            filename=logfile[0],
            level=logging.INFO,
            force=True,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def run_subject_report(snakemake) -> None:
    """Entry of ``workflow/scripts/report_subject.py`` (rule ``report_subject``).

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake injects into the script: the subject's output
        files as input, the HTML and JSON summary as output.
    """
    _setup_log(snakemake)
    p = snakemake.params
    files = [f for f in _flatten(snakemake.input) if not f.endswith(".json")]
    build_subject(
        snakemake.wildcards.subject,
        files,
        snakemake.output.html,
        snakemake.output.summary,
        task=getattr(p, "task", None),
        truth=getattr(p, "truth", None),
        config=dict(snakemake.config),
        conditions=getattr(p, "conditions", None),
    )


def run_cohort_report(snakemake) -> None:
    """Entry of ``workflow/scripts/report_cohort.py`` (rule ``report_cohort``).

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake injects into the script: the subjects' JSON
        summaries and the grand averages as input, the cohort HTML as output.
    """
    _setup_log(snakemake)
    p = snakemake.params
    ga_files = _flatten(snakemake.input.grandavg)
    keys = [(c, m) for c in p.conditions for m in p.methods]
    grand = dict(zip(keys, ga_files, strict=True))
    build_cohort(
        snakemake.input.summaries,
        snakemake.output.html,
        grand_averages=grand,
        task=getattr(p, "task", None),
    )
