# Shared definitions: config validation, discovery of subjects/task/conditions, path helpers.
# Everything here runs at DAG-build time, so it stays cheap: no numpy, no file reading beyond
# directory listings and the events.tsv trial_type column.

import csv
import glob
import re
from pathlib import Path

from exgsrc.labels import condition_label
from exgsrc.provenance import config_sha256


validate(config, "../schemas/config.schema.yaml")

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
        if not BIDS_ROOT.is_dir():
            _bids_error("folder not found")
        found = sorted(p.name[4:] for p in BIDS_ROOT.glob("sub-*") if p.is_dir())
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


def _entity(path, key):
    m = re.search(rf"_{key}-([A-Za-z0-9]+)", os.path.basename(path))
    return m.group(1) if m else None


SESSION = None if config["session"] is None else _label(config["session"])
RUNS = None if config["runs"] == "all" else [_label(r) for r in config["runs"]]


def _eeg_files(subject, session=True):
    """Raw EEG files of one subject for the configured session and runs (any task).

    ``session=False`` lists every session (to report what exists).
    """
    pats = [f"sub-{subject}/eeg/*_eeg.*", f"sub-{subject}/ses-*/eeg/*_eeg.*"]
    files = []
    for pat in pats:
        files += glob.glob(str(BIDS_ROOT / pat))
    files = [f for f in files if re.search(r"\.(edf|bdf|set|vhdr)$", f)]
    if session and SESSION is not None:
        files = [f for f in files if _same_label(_entity(f, "ses"), SESSION)]
    return sorted(files)


def _discover_task(subjects):
    if config["task"]:
        return config["task"]
    if IS_DEMO:
        return DEMO_TASK
    tasks = set()
    for s in subjects:
        for f in _eeg_files(s):
            m = re.search(r"_task-([A-Za-z0-9]+)", os.path.basename(f))
            if m:
                tasks.add(m.group(1))
    tasks.discard(NOISE_TASK)  # the noise recording is never the main task
    if len(tasks) != 1:
        _bids_error(f"set config 'task' to one of the tasks found: {sorted(tasks)}")
    return tasks.pop()


def _task_files(subject, task=None):
    """Recordings of ``task`` (default: the main task; runs filtered for the main task only)."""
    main = task is None or task == TASK
    task = TASK if task is None else task
    files = [f for f in _eeg_files(subject) if f"_task-{task}_" in os.path.basename(f)]
    if main and RUNS is not None:
        files = [f for f in files if any(_same_label(_entity(f, "run"), r) for r in RUNS)]
    return files


def recording_selection(wildcards):
    """Session and run labels (as spelled in the files) of one subject's main-task recordings.

    Passed to the steps that read recordings (``exgsrc.steps.preprocess.recordings`` discovers with them), so
    the files read are exactly the rule's inputs.
    """
    if IS_DEMO:
        return {"session": None, "runs": None}
    files = _task_files(wildcards.subject)
    sessions = sorted({_entity(f, "ses") for f in files} - {None})
    runs = sorted({_entity(f, "run") for f in files} - {None}) if RUNS is not None else None
    return {"session": sessions[0] if sessions else None, "runs": runs}


def _check_sessions(subjects):
    """One session per subject: stop with the sessions found when the choice is ambiguous."""
    if SESSION is not None:
        return
    for s in subjects:
        found = sorted(
            {
                _entity(f, "ses")
                for f in _eeg_files(s, session=False)
                if f"_task-{TASK}_" in os.path.basename(f)
            }
            - {None}
        )
        if len(found) > 1:
            _bids_error(
                f"sub-{s} has sessions {found} of task {TASK!r}: set config 'session' to one "
                "of them (each session is a separate cap placement; run the workflow once per "
                "session, with its own 'output')"
            )


def _discover_conditions(subjects):
    wanted = config["conditions"]
    if IS_DEMO:
        found = list(config["demo"]["conditions"])
    else:
        found = set()
        for s in subjects:
            for f in _task_files(s):
                ev = re.sub(r"_eeg\.[a-z]+$", "_events.tsv", f)
                if os.path.exists(ev):
                    with open(ev, newline="") as fh:
                        for row in csv.DictReader(fh, delimiter="\t"):
                            tt = row.get("trial_type")
                            if tt and tt != "n/a":
                                found.add(tt)
        found = sorted(found)
    if wanted == "all":
        if not found:
            _bids_error("no trial_type values in events.tsv; set config 'conditions'")
        return found
    if not IS_DEMO:
        missing = [c for c in wanted if c not in found]
        if missing:
            _bids_error(f"conditions not in any events.tsv trial_type: {missing}")
    return list(wanted)


SUBJECTS = _discover_subjects()
TASK = _discover_task(SUBJECTS)
if not IS_DEMO:
    _check_sessions(SUBJECTS)
    _empty = [s for s in SUBJECTS if not _task_files(s)]
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
CONDITIONS = _discover_conditions(SUBJECTS)
# path-safe, reversible labels (see exgsrc.labels.condition_label)
COND_LABELS = {condition_label(c): c for c in CONDITIONS}


wildcard_constraints:
    subject="[A-Za-z0-9]+",
    cond="[A-Za-z0-9]+",
    method="MNE|dSPM|sLORETA|eLORETA",


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
    """All raw files of one subject for the task (data + BIDS sidecars)."""
    if IS_DEMO:
        d = DEMO_ROOT / f"sub-{wildcards.subject}" / "eeg"
        base = f"sub-{wildcards.subject}_task-{DEMO_TASK}"
        return [
            str(d / f"{base}_eeg.edf"),
            str(d / f"{base}_channels.tsv"),
            str(d / f"{base}_events.tsv"),
            str(d / f"sub-{wildcards.subject}_space-CapTrak_electrodes.tsv"),
        ]
    files = _recording_files(wildcards.subject, TASK)
    eeg_dir = os.path.dirname(files[0])
    files += sorted(glob.glob(os.path.join(eeg_dir, "*_electrodes.tsv")))
    return files


def _recording_files(subject, task, extras=("_channels.tsv", "_events.tsv", "_eeg.json")):
    """Data files of one subject's recordings of ``task`` (all sessions/runs) + sidecars."""
    files = []
    for f in _task_files(subject, task):
        files.append(f)
        stem = re.sub(r"_eeg\.[a-z]+$", "", f)
        files += [stem + e for e in extras if os.path.exists(stem + e)]
        if f.endswith(".set") and os.path.exists(f[:-4] + ".fdt"):
            files.append(f[:-4] + ".fdt")
        if f.endswith(".vhdr"):
            files += [g for g in (f[:-5] + ".eeg", f[:-5] + ".vmrk") if os.path.exists(g)]
    return files


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
        "noise": _recording_files(wildcards.subject, NOISE_TASK, ("_channels.tsv", "_eeg.json")),
    }


def demo_truth():
    return str(DEMO_ROOT / "code" / "demo_truth.json")


def stc_files(subject=None, cond=None, method=None):
    return expand(
        sub_path("cond-{cond}_desc-{method}_stc.nc"),
        subject=[subject] if subject else SUBJECTS,
        cond=[cond] if cond else list(COND_LABELS),
        method=[method] if method else METHODS,
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
    return targets + list(REPORT_TARGETS)
