# Shared definitions: config validation, discovery of subjects/task/conditions, path helpers.
# Everything here runs at DAG-build time, so it stays cheap: discovery is exgsrc.io.discovery
# and the condition rule exgsrc.io.events (the same functions the steps use; standard library
# only), reading no more than directory listings, participants.tsv and the events.tsv column
# of the condition codes (config events.column).

import functools
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from exgsrc.config import ConfigError, check_relations, load_schema, validate_config
from exgsrc.io.discovery import discover, list_subjects
from exgsrc.io.events import columns_and_codes, parse_contrasts, resolve_conditions
from exgsrc.labels import condition_label
from exgsrc.runs import (
    acquire_output_lock,
    recorded_failures,
    release_output_lock,
    remove_stale_temporaries,
    run_summary,
)
from exgsrc.provenance import config_sha256


# Nested --config values arrive as text: coerced to the schema's types, then validated
# (defaults filled in); a problem is one line naming the key.
validate_config(config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"))
_relation_errors, _relation_warnings = check_relations(config)
if _relation_errors:
    raise ConfigError("; ".join(_relation_errors))
for _w in _relation_warnings:
    logger.warning(f"exgsrc: {_w}")

BIDS_ROOT = Path(config["bids_root"])
DEMO_ROOT = Path(config["demo"]["root"])
IS_DEMO = os.path.abspath(BIDS_ROOT) == os.path.abspath(DEMO_ROOT)
OUT = Path(config["output"])
LOGS = OUT / "logs"
BENCH = OUT / "benchmarks"
METHODS = list(config["inverse"]["methods"])
RES_METHODS = list(config["resolution"]["methods"] or METHODS)
LAMBDA2 = (
    float(config["inverse"]["lambda2"])
    if config["inverse"]["lambda2"] is not None
    else 1.0 / float(config["inverse"]["snr"]) ** 2
)
DEMO_TASK = "demo"
# A volume grid has no surface normals: only free orientations apply to it. Said here,
# before any job runs, rather than by every subject's inverse_operator job.
if config["source_space"]["kind"] == "grid":
    if float(config["inverse"]["loose"]) != 1.0:
        raise ValueError(
            f"config inverse.loose={config['inverse']['loose']} needs surface normals, but "
            "source_space.kind='grid' (a volume) has none: set inverse.loose: 1 (free "
            "orientation) or use source_space.kind: ico"
        )
    if config["inverse"]["pick_ori"] == "normal":
        raise ValueError(
            "config inverse.pick_ori='normal' needs surface normals, but "
            "source_space.kind='grid' (a volume) has none: use pick_ori: null"
        )
RETRY_HINT = f".venv/bin/exgsrc retry {OUT} && .venv/bin/snakemake --cores all"


def _failure_notice():
    """Failed steps recorded by earlier runs (cheap: small notes beside the logs)."""
    failures = recorded_failures(LOGS)
    if failures and workflow.is_main_process:
        rules = sorted({f["rule"] for f in failures})
        logger.warning(
            f"exgsrc: {len(failures)} step(s) of earlier runs recorded failures ({', '.join(rules)}); "
            f"they are kept as failed-status outputs. After fixing the input, retry them: {RETRY_HINT}"
        )


def report_run_outcome(raise_if_none_succeeded):
    """Summary at the end of a run: failed subjects, steps and reasons; retry hint."""
    lines, n_ok, n_subjects = run_summary(OUT)
    if n_subjects:
        logger.warning(f"exgsrc: {n_ok} of {n_subjects} subject(s) have results")
    for line in lines:
        logger.warning(f"exgsrc: {line}")
    if recorded_failures(LOGS):
        logger.warning(f"exgsrc: after fixing the input, retry what failed: {RETRY_HINT}")
    if raise_if_none_succeeded and n_subjects and not n_ok:
        raise WorkflowError(
            f"no subject succeeded ({n_subjects} failed; see {OUT / 'group' / 'qc.tsv'})"
        )


_failure_notice()
# separate noise recording (empty room / rest) for the noise covariance; None = epoch baseline
NOISE_TASK = config["covariance"]["noise_task"]

# Files whose parents other rule files (report.smk) may add to the default target.
REPORT_TARGETS = []


def _bids_error(msg):
    raise ValueError(f"config bids_root={str(BIDS_ROOT)!r}: {msg}")


def _discover_subjects():
    if IS_DEMO:
        found = [f"{i + 1:02d}" for i in range(config["demo"]["n_subjects"])]
    else:
        found, warnings = list_subjects(BIDS_ROOT)
        for w in warnings:
            logger.warning(f"exgsrc: {w}")
        found = sorted(found)
        if not found:
            _bids_error("no sub-* folders")
    wanted = config["subjects"]
    if wanted == "all":
        return found
    # YAML reads 01 as the integer 1: match integers against numeric labels
    numeric = {int(f): f for f in found if f.isdigit()}
    wanted = [
        numeric.get(s, str(s)) if isinstance(s, int) else str(s).removeprefix("sub-")
        for s in wanted
    ]
    missing = [s for s in wanted if s not in found]
    if missing:
        _bids_error(f"subjects not found: {', '.join('sub-' + s for s in missing)}")
    return wanted


def _label(value):
    """A config label as text ("ses-2" -> "2"); integers stay numeric for matching."""
    return value if isinstance(value, int) else str(value).split("-", 1)[-1]


def _same_label(found, wanted):
    """BIDS label match; YAML reads 01 as 1, so integers match numerically."""
    if isinstance(wanted, int):
        return found is not None and found.isdigit() and int(found) == wanted
    return found == wanted


SESSION = None if config["session"] is None else _label(config["session"])
RUNS = None if config["runs"] == "all" else [_label(r) for r in config["runs"]]


@functools.cache
def _cohort_recordings():
    """Every EEG recording of the selected subjects, by subject: one discovery for the
    cohort (per subject, discovery would list the dataset root and read participants.tsv
    once per subject: quadratic in the number of subjects)."""
    by_subject = {s: [] for s in SUBJECTS}
    for r in discover(BIDS_ROOT, subjects=SUBJECTS):
        by_subject[r.subject].append(r)
    return {s: tuple(recs) for s, recs in by_subject.items()}


@functools.cache
def _subject_recordings(subject):
    """Every EEG recording of one subject (all tasks and sessions), found by
    exgsrc.io.discovery as the steps find them."""
    found = _cohort_recordings().get(subject)
    if found is None:  # not a selected subject (never, through the rules' wildcards)
        found = tuple(discover(BIDS_ROOT, subjects=[subject]))
    return found


def _recordings(subject, session=True):
    """Recordings of one subject in the configured session (``session=False``: all)."""
    recs = _subject_recordings(subject)
    if session and SESSION is not None:
        recs = [r for r in recs if _same_label(r.session, SESSION)]
    return list(recs)


def _discover_task(subjects):
    if config["task"]:
        return config["task"]
    if IS_DEMO:
        return DEMO_TASK
    tasks = {r.task for s in subjects for r in _recordings(s)}
    tasks.discard(NOISE_TASK)  # the noise recording is never the main task
    if len(tasks) != 1:
        _bids_error(f"set config 'task' to one of the tasks found: {sorted(tasks)}")
    return tasks.pop()


def _task_recordings(subject, task=None):
    """Recordings of ``task`` (default: the main task; runs filtered for the main task only)."""
    main = task is None or task == TASK
    task = TASK if task is None else task
    recs = [r for r in _recordings(subject) if r.task == task]
    if main and RUNS is not None:
        recs = [r for r in recs if any(_same_label(r.run, want) for want in RUNS)]
    return recs


def recording_selection(wildcards):
    """Session and run labels (as spelled in the files) of one subject's main-task recordings.

    Passed to the steps that read recordings (``exgsrc.steps.preprocess.recordings``
    discovers with them), so the files read are exactly the rule's inputs.
    """
    if IS_DEMO:
        return {"session": None, "runs": None}
    recs = _task_recordings(wildcards.subject)
    sessions = sorted({r.session for r in recs} - {None})
    runs = sorted({r.run for r in recs} - {None}) if RUNS is not None else None
    return {"session": sessions[0] if sessions else None, "runs": runs}


def _check_sessions(subjects):
    """One session per subject: stop with the sessions found when the choice is ambiguous."""
    if SESSION is not None:
        return
    for s in subjects:
        found = sorted({r.session for r in _recordings(s, session=False) if r.task == TASK} - {None})
        if len(found) > 1:
            _bids_error(
                f"sub-{s} has sessions {found} of task {TASK!r}: set config 'session' to one "
                "of them (each session is a separate cap placement; run the workflow once per "
                "session, with its own 'output')"
            )


EVENTS_COLUMN = config["events"]["column"]


def _events_files(subjects):
    """The events.tsv files of the task's recordings (sorted, each once)."""
    return sorted(
        {str(r.events_path) for s in subjects for r in _task_recordings(s) if r.events_path}
    )


def _short(values, n=20):
    values = list(values)
    return repr(values) if len(values) <= n else f"{values[:n]!r} and {len(values) - n} more"


def _event_codes_found(subjects):
    """Distinct codes of config events.column over the task's events.tsv files, and where."""
    if IS_DEMO:
        if EVENTS_COLUMN != "trial_type":
            raise ValueError(
                f"config events.column={EVENTS_COLUMN!r}: the simulated demo cohort codes its "
                "conditions in 'trial_type'; use events.column: trial_type"
            )
        return list(config["demo"]["conditions"]), "the demo's conditions (demo.conditions)"
    files = _events_files(subjects)
    read = {f: columns_and_codes(f, EVENTS_COLUMN) for f in files}  # each file read once
    with_col = [f for f in files if read[f][1] is not None]
    if files and not with_col:
        raise ValueError(
            f"config events.column={EVENTS_COLUMN!r}: no events.tsv of task {TASK!r} has this "
            f"column (e.g. {files[0]} has {read[files[0]][0]})"
        )
    for f in files:
        if read[f][1] is None:
            logger.warning(
                f"exgsrc: {f} has no column {EVENTS_COLUMN!r} (config events.column): that "
                "recording's subject will fail at the epochs step"
            )
    found = sorted({c for f in with_col for c in read[f][1]})
    where = f"column {EVENTS_COLUMN!r} of the {len(with_col)} events.tsv of task {TASK!r}"
    if with_col:
        where += f" (e.g. {with_col[0]})"
    return found, where


def _discover_conditions(subjects):
    """Condition name -> the event codes it takes (config conditions, events.column)."""
    spec = config["conditions"]
    found, where = _event_codes_found(subjects)
    try:
        resolved = resolve_conditions(found, spec)
    except ValueError as exc:
        raise ValueError(f"config conditions: {exc}") from None
    if not resolved:
        _bids_error(f"no condition codes in {where}; set config 'events.column' / 'conditions'")
    for i, (name, codes) in enumerate(resolved.items()):
        if not codes:
            if isinstance(spec, dict):
                key = f"conditions.{name}"
                what = next(v for k, v in spec.items() if str(k) == name)
            else:
                key, what = f"conditions[{i}]", name
            raise ValueError(
                f"config {key}={what!r}: no event code matches in {where}; codes found: "
                f"{_short(found)}"
            )
    return resolved, found


SUBJECTS = _discover_subjects()
TASK = _discover_task(SUBJECTS)
if not IS_DEMO:
    _check_sessions(SUBJECTS)
    _empty = [s for s in SUBJECTS if not _task_recordings(s)]
    if _empty:
        _sel = "".join(
            f", {k} {v!r}" for k, v in (("session", SESSION), ("runs", RUNS)) if v is not None
        )
        _bids_error(
            f"no EEG recording for task {TASK!r}{_sel} in: {', '.join('sub-' + s for s in _empty)}"
        )
if NOISE_TASK is not None:
    if IS_DEMO:
        raise ValueError(
            f"config covariance.noise_task={NOISE_TASK!r}: the simulated demo cohort has no noise "
            "recording; use noise_task: null (epoch baseline) or point bids_root at your data"
        )
    if NOISE_TASK == TASK:
        raise ValueError(f"config covariance.noise_task={NOISE_TASK!r} equals the main task")
# condition name -> event codes it takes (exgsrc.io.events; logged for the user)
CONDITION_CODES, _CODES_FOUND = _discover_conditions(SUBJECTS)
CONDITIONS = list(CONDITION_CODES)
# What the epochs step needs to pick the events: column + spec (exgsrc.io.bids.condition_rows),
# or nothing when every condition is exactly one trial_type code, which the step then
# matches by name (as before: the rule's params, hence earlier results, stay as they were).
EVENTS_PARAMS = (
    {}
    if EVENTS_COLUMN == "trial_type"
    and resolve_conditions(_CODES_FOUND, CONDITIONS) == {c: [c] for c in CONDITIONS}
    else {"events": {"column": EVENTS_COLUMN, "conditions": config["conditions"]}}
)
if any(codes != [name] for name, codes in CONDITION_CODES.items()):
    logger.info(
        f"exgsrc: conditions from events column {EVENTS_COLUMN!r}: "
        + "; ".join(f"{n} = {c}" for n, c in CONDITION_CODES.items())
    )
# contrasts (config contrasts): weighted sums of conditions, conditions of their own
CONTRASTS = parse_contrasts(config["contrasts"], CONDITIONS)
# path-safe, reversible labels (see exgsrc.labels.condition_label): the conditions made of
# events, the contrasts, and both (every condition of the outputs, contrasts last)
EVENT_COND_LABELS = {condition_label(c): c for c in CONDITIONS}
CONTRAST_LABELS = {condition_label(c.name): c for c in CONTRASTS}
COND_LABELS = {**EVENT_COND_LABELS, **{lab: c.name for lab, c in CONTRAST_LABELS.items()}}


wildcard_constraints:
    subject="[A-Za-z0-9]+",
    cond="[A-Za-z0-9]+",
    method="MNE|dSPM|sLORETA|eLORETA",


@functools.cache  # called per job by input functions
def sub_path(suffix):
    """Output pattern of a per-subject file, e.g. sub_path('fwd.nc')."""
    return str(OUT / "sub-{subject}" / "eeg" / f"sub-{{subject}}_task-{TASK}_{suffix}")


def group_path(name):
    return str(OUT / "group" / name)


def log_path(rule_name, stem="sub-{subject}"):
    return str(LOGS / rule_name / f"{stem}.log")


def bench_path(rule_name, stem="sub-{subject}"):
    return str(BENCH / rule_name / f"{stem}.tsv")


def recording_inputs(wildcards):
    """All raw files of one subject for the task (data, companion files, BIDS sidecars)."""
    if IS_DEMO:
        d = DEMO_ROOT / f"sub-{wildcards.subject}" / "eeg"
        base = f"sub-{wildcards.subject}_task-{DEMO_TASK}"
        return [
            str(d / f"{base}_eeg.edf"),
            str(d / f"{base}_channels.tsv"),
            str(d / f"{base}_events.tsv"),
            str(d / f"sub-{wildcards.subject}_space-CapTrak_electrodes.tsv"),
        ]
    return _recording_files(wildcards.subject, TASK)


def _recording_files(subject, task):
    """Files of one subject's recordings of ``task`` (all runs of the session)."""
    files = [str(f) for r in _task_recordings(subject, task) for f in r.files]
    return list(dict.fromkeys(files))


def noise_cov_inputs(wildcards):
    """Inputs of the noise covariance: the epochs, or the montage + the noise recording.

    With ``covariance.noise_task`` set, a subject without that recording gets no
    noise files here; its noise_cov job then fails with a message naming the
    subject and the task (recorded as that subject's failure under on_error: record).
    """
    if NOISE_TASK is None:
        return {"epochs": sub_path("epo.nc").format(subject=wildcards.subject)}
    return {
        "montage": sub_path("montage.nc").format(subject=wildcards.subject),
        "noise": _recording_files(wildcards.subject, NOISE_TASK),
    }


def demo_truth():
    return str(DEMO_ROOT / "code" / "demo_truth.json")


def stc_files(subject=None, cond=None, method=None, labels=None):
    """Source-estimate files (subject, condition, method order); ``labels``: the condition
    labels to take (default COND_LABELS: conditions and contrasts)."""
    return list(
        _stc_files(
            subject,
            cond,
            method,
            None if labels is None else tuple(labels),
        )
    )


@functools.cache
def _stc_files(subject, cond, method, labels):
    # str.format, not expand(): the same names (subject, condition, method order), made
    # several times per rule over the whole cohort (qc_table, report_cohort, all) and
    # once per subject and per grand average; cached, each list is made once
    pattern = sub_path("cond-{cond}_desc-{method}_stc.nc")
    return tuple(
        pattern.format(subject=s, cond=c, method=m)
        for s in ([subject] if subject else SUBJECTS)
        for c in ([cond] if cond else list(COND_LABELS if labels is None else labels))
        for m in ([method] if method else METHODS)
    )


def all_targets():
    targets = [str(OUT / "dataset_description.json"), group_path("qc.tsv")]
    targets += expand(
        group_path(f"task-{TASK}_cond-{{cond}}_desc-{{method}}_grandavg.nc"),
        cond=list(COND_LABELS),
        method=METHODS,
    )
    targets += stc_files()
    targets += expand(sub_path("snr.nc"), subject=SUBJECTS)
    if config["resolution"]["enabled"]:
        targets += expand(sub_path("resolution.nc"), subject=SUBJECTS)
    if IS_DEMO:
        targets.append(group_path(f"task-{TASK}_localisation.tsv"))
    targets += statistics_files()  # cohort statistics (statistics.smk); none by default
    return targets + list(REPORT_TARGETS)
