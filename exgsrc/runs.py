"""One workflow run against its output folder: lock, stale temporaries, failures, summary.

Used by the Snakefile's ``onstart`` / ``onsuccess`` / ``onerror`` hooks and by
``common.smk`` while Snakemake builds the DAG, so it imports the standard library only.

* :func:`acquire_output_lock` / :func:`release_output_lock`: one run at a time writes
  into an output folder, whatever Snakemake working directory each run uses (Snakemake
  only locks its own ``.snakemake`` folder). A lock whose process is gone (a ``kill -9``,
  a lost node) is taken over with a note.
* :func:`remove_stale_temporaries`: files left half-written by a killed job
  (``.<name>.<pid>.tmp``, see :func:`exgsrc.store.write_netcdf`) are removed.
* :func:`record_failure` / :func:`clear_failure` / :func:`recorded_failures`: every step
  that records a failure (``on_error: record``) leaves a small JSON next to its log, so
  that the next run can say so before doing anything, cheaply.
* :func:`run_summary`: what failed, for whom and why, read from ``group/qc.tsv``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import time
from pathlib import Path

__all__ = [
    "LOCK_NAME",
    "OutputLocked",
    "acquire_output_lock",
    "clear_failure",
    "record_failure",
    "recorded_failures",
    "release_output_lock",
    "remove_stale_temporaries",
    "retry_failed",
    "run_summary",
]

LOCK_NAME = ".exgsrc.lock"
_TMP_NAME = re.compile(r"^\..+\.\d+\.tmp$")
_FAILURE_SUFFIX = ".failed.json"


class OutputLocked(RuntimeError):
    """Another live run holds the output folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def acquire_output_lock(output, workdir) -> str | None:
    """Take the output folder for this run.

    Parameters
    ----------
    output : path-like
        The workflow's output folder.
    workdir : path-like
        This run's Snakemake working directory (recorded in the lock).

    Returns
    -------
    str | None
        A note when a stale lock (its process gone) was taken over, else None.

    Raises
    ------
    OutputLocked
        A live process on this host holds the folder (naming its pid and working
        directory), or a process on another host does.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_NAME
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "workdir": str(Path(workdir).resolve()),
    }
    note = None
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return None
            alive = holder.get("host") != me["host"] or _pid_alive(int(holder.get("pid", -1)))
            if alive:
                raise OutputLocked(
                    f"output folder {out} is in use by another exgsrc run (pid {holder.get('pid')} "
                    f"on {holder.get('host')}, working directory {holder.get('workdir')}); wait "
                    f"for it, or remove {lock} if that run is gone"
                ) from None
            note = (
                f"took over the lock of {out} left by a run that is gone (pid {holder.get('pid')})"
            )
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump({**me, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}, fh)
        return note
    raise OutputLocked(f"output folder {out}: could not take the lock {lock}")


def _read_lock(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}


def release_output_lock(output) -> None:
    """Give the output folder back (only if this process holds it).

    Parameters
    ----------
    output : path-like
    """
    lock = Path(output) / LOCK_NAME
    holder = _read_lock(lock)
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)


def remove_stale_temporaries(output) -> list[str]:
    """Remove half-written files of killed jobs (call while holding the lock).

    Parameters
    ----------
    output : path-like

    Returns
    -------
    list of str
        The files removed.
    """
    removed = []
    for folder, _, files in os.walk(output):
        for name in files:
            if _TMP_NAME.match(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(str(path))
    return removed


def _failure_file(log_file) -> Path:
    return Path(str(log_file) + _FAILURE_SUFFIX)


def record_failure(log_file, rule: str, outputs, error: str) -> None:
    """Note a failed step next to its log.

    Parameters
    ----------
    log_file : path-like
        The job's log (``<output>/logs/<rule>/<wildcards>.log``).
    rule : str
    outputs : list of str
        The failed-status placeholders written (recorded as absolute paths: Snakemake
        gives them relative to the run's working directory, and ``exgsrc retry`` may
        run elsewhere).
    error : str
    """
    path = _failure_file(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs = [os.path.abspath(o) for o in outputs]
    path.write_text(json.dumps({"rule": rule, "outputs": outputs, "error": error}))


def clear_failure(log_file) -> None:
    """Forget a failure note after the step succeeded.

    Parameters
    ----------
    log_file : path-like
    """
    _failure_file(log_file).unlink(missing_ok=True)


def recorded_failures(logs) -> list[dict]:
    """The failure notes under a logs folder.

    Parameters
    ----------
    logs : path-like
        ``<output>/logs``.

    Returns
    -------
    list of dict
        ``rule``, ``outputs``, ``error`` and ``note`` (the note's path).
    """
    notes = []
    for path in sorted(Path(logs).glob(f"*/*{_FAILURE_SUFFIX}")):
        try:
            note = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        notes.append({**note, "note": str(path)})
    return notes


def retry_failed(output) -> list[str]:
    """Remove every failed-status output recorded under ``output`` so the next run redoes it.

    Snakemake then reruns those steps (their outputs are missing) and everything
    downstream of them (their inputs are newer).

    Parameters
    ----------
    output : path-like
        The workflow's output folder.

    Returns
    -------
    list of str
        The outputs removed.
    """
    removed = []
    for note in recorded_failures(Path(output) / "logs"):
        for out in note.get("outputs", []):
            if Path(out).exists():
                Path(out).unlink()
                removed.append(out)
        Path(note["note"]).unlink(missing_ok=True)
    return removed


def run_summary(output) -> tuple[list[str], int, int]:
    """What the run produced, from the cohort's QC table.

    Parameters
    ----------
    output : path-like
        The workflow's output folder.

    Returns
    -------
    lines : list of str
        One line per subject that failed or has warnings (subject, step, reason).
    n_ok : int
        Subjects with usable results (status ok or warning).
    n_subjects : int
        Subjects in the table (0 when there is no table).
    """
    table = Path(output) / "group" / "qc.tsv"
    if not table.is_file() or table.read_text().startswith("# FAILED"):
        return [f"no QC table at {table}"], 0, 0
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    lines = [
        f"sub-{r['subject']}: {r['status']} at {r['failed_step']}: {r['reason']}"
        for r in rows
        if r["status"] != "ok"
    ]
    n_ok = sum(r["status"] in ("ok", "warning") for r in rows)
    return lines, n_ok, len(rows)
