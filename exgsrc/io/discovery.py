"""BIDS discovery: subjects, sessions, tasks, runs and the sidecars of each recording.

Plain ``pathlib``/``re`` code with no numerical imports, so that the workflow's
``common.smk`` can call it while Snakemake builds the DAG (the steps use the same
functions when they read the recordings).

Sidecar lookup follows the BIDS inheritance principle in a simplified form: for a
recording ``sub-01[_ses-a]_task-x[_acq-y][_run-1]_eeg.<ext>`` a sidecar with a
given suffix is searched in the recording's folder, then the session, subject and
dataset root folders; a candidate matches when all its entities are among the
recording's entities (``space`` is ignored for ``electrodes``/``coordsystem``);
the most specific (closest folder, most entities) wins.
"""

from __future__ import annotations

import re
import warnings as _warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from ._errors import BidsError, BidsWarning
from ._tsv import read_json, read_tsv

__all__ = [
    "BidsRecording",
    "discover",
    "list_subjects",
    "validate_label",
]

_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_EXT_FORMAT = {".edf": "EDF", ".bdf": "BDF", ".vhdr": "BrainVision", ".set": "EEGLAB"}
#: ``trial_type`` prefixes (case-insensitive) of events.tsv rows that mark bad segments or
#: discontinuities, never conditions: exgsrc.annotations.DISCONTINUITIES (kept equal by a
#: test; repeated here so that discovery imports no numerics).
SEGMENT_MARKERS = ("bad", "edge", "boundary", "new segment")
# data files that come with the main one (EEGLAB's .fdt, BrainVision's .eeg and .vmrk)
_COMPANIONS = {".set": (".fdt",), ".vhdr": (".eeg", ".vmrk")}


def validate_label(value, entity: str) -> str:
    """Return a BIDS label (alphanumeric) for ``entity`` or raise :class:`BidsError`.

    ``"sub-01"`` given for ``sub`` is accepted as ``"01"``.

    Parameters
    ----------
    value : str | int
        The label, with or without its ``<entity>-`` prefix.
    entity : str
        BIDS entity key (``"sub"``, ``"ses"``, ``"task"``, ``"run"``, ...).

    Returns
    -------
    str
        The bare label.
    """
    s = str(value)
    if s.startswith(f"{entity}-"):
        s = s[len(entity) + 1 :]
    if not _LABEL_RE.match(s):
        raise BidsError(
            f"invalid BIDS {entity} label {value!r}: labels must be alphanumeric (A-Z, a-z, 0-9)"
        )
    return s


@dataclass(frozen=True)
class BidsRecording:
    """One EEG recording of a BIDS dataset and its sidecars.

    Parameters
    ----------
    root : Path
        Dataset root.
    subject, task : str
        Entity labels (without ``sub-``/``task-``).
    session, run, acquisition : str | None
    data_path : Path
        ``*_eeg.edf|.bdf|.vhdr|.set``.
    format : str
        ``"EDF"``, ``"BDF"``, ``"BrainVision"`` or ``"EEGLAB"``.
    channels_path, events_path, eeg_json_path, electrodes_path, coordsystem_path : Path | None
        Sidecars found by the inheritance rule (None if absent).
    warnings : tuple of str
        Problems found during discovery.
    """

    root: Path
    subject: str
    session: str | None
    task: str
    run: str | None
    data_path: Path
    format: str
    acquisition: str | None = None
    channels_path: Path | None = None
    events_path: Path | None = None
    eeg_json_path: Path | None = None
    electrodes_path: Path | None = None
    coordsystem_path: Path | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def entities(self) -> dict[str, str]:
        """Entities present, e.g. ``{"sub": "01", "task": "squares"}``."""
        d = {
            "sub": self.subject,
            "ses": self.session,
            "task": self.task,
            "acq": self.acquisition,
            "run": self.run,
        }
        return {k: v for k, v in d.items() if v is not None}

    @property
    def basename(self) -> str:
        """``sub-01[_ses-x]_task-t[_acq-a][_run-r]`` (no suffix)."""
        return "_".join(f"{k}-{v}" for k, v in self.entities.items())

    @property
    def files(self) -> list[Path]:
        """Every file the recording is read from: the data file, its companion data
        files (``.fdt``; ``.eeg``, ``.vmrk``) and the sidecars found."""
        data = self.data_path
        out = [data]
        out += [
            data.with_suffix(ext)
            for ext in _COMPANIONS.get(data.suffix.lower(), ())
            if data.with_suffix(ext).is_file()
        ]
        sidecars = (
            self.channels_path,
            self.events_path,
            self.eeg_json_path,
            self.electrodes_path,
            self.coordsystem_path,
        )
        return out + [p for p in sidecars if p is not None]


_NAME_RE = re.compile(r"^(?P<stem>.+?)_(?P<suffix>[A-Za-z0-9]+)(?P<ext>(\.[A-Za-z0-9]+)+)$")


def _parse_entities(name: str) -> tuple[dict[str, str], str, str] | None:
    """Split ``sub-01_task-x_eeg.edf`` -> ({sub:01, task:x}, 'eeg', '.edf'); None if not BIDS-like."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    ents = {}
    for part in m.group("stem").split("_"):
        if "-" not in part:
            return None
        k, _, v = part.partition("-")
        ents[k] = v
    return ents, m.group("suffix"), m.group("ext")


def _listing(d: Path, listings: dict) -> dict:
    """BIDS-like file names of folder ``d``: ``(suffix, ext) -> [(path, entities), ...]``.

    Read once per :func:`discover` call (``listings`` caches them): the dataset root
    and each subject folder are searched for the sidecars of every recording below
    them, and a root with 1 000 ``sub-*`` folders would otherwise be listed and
    parsed five times per recording.
    """
    found = listings.get(d)
    if found is None:
        found = {}
        if d.is_dir():
            for p in d.iterdir():
                parsed = _parse_entities(p.name)
                if parsed is not None:
                    ents, suf, e = parsed
                    found.setdefault((suf, e), []).append((p, ents))
        listings[d] = found
    return found


def _sidecar(
    rec_ents: dict,
    dirs: list[Path],
    suffix: str,
    ext: str,
    ignore=("space",),
    listings: dict | None = None,
):
    best, best_key = None, None
    listings = {} if listings is None else listings
    for depth, d in enumerate(dirs):
        for p, ents in _listing(d, listings).get((suffix, ext), ()):
            core = {k: v for k, v in ents.items() if k not in ignore}
            if all(rec_ents.get(k) == v for k, v in core.items()):
                key = (-depth, len(core), p.name)
                if best_key is None or key > best_key:
                    best, best_key = p, key
    return best


def list_subjects(bids_root) -> tuple[list[str], list[str]]:
    """Subject labels of a dataset: ``participants.tsv`` order, then unlisted folders.

    Parameters
    ----------
    bids_root : path-like
        Dataset root.

    Returns
    -------
    subjects : list of str
        Labels (without ``sub-``) that have a folder and are valid BIDS labels.
    warnings : list of str
        Folders skipped for an invalid label, subjects listed without a folder,
        folders not listed; each names the path.

    Raises
    ------
    BidsError
        The root is missing or ``participants.tsv`` is malformed.
    """
    root = Path(bids_root)
    if not root.is_dir():
        raise BidsError(f"{root}: BIDS root folder not found")
    warnings: list[str] = []
    return _subjects(root, warnings), warnings


def _subjects(root: Path, warnings: list[str]) -> list[str]:
    # A malformed participants.tsv (ragged file, an id without ``sub-``) is a
    # warning naming the file and line, not a stop: the subject folders are the
    # recordings, and one bad row must not keep every other subject from running.
    folders = sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())
    part = root / "participants.tsv"
    listed = _listed_participants(part, warnings) if part.is_file() else None
    if listed is not None:
        folder_set, listed_set = set(folders), set(listed)
        for s in listed:
            if s not in folder_set:
                warnings.append(
                    f"{part}: subject sub-{s} listed but folder {root / ('sub-' + s)} missing"
                )
        for s in folders:
            if s not in listed_set:
                warnings.append(f"{part}: folder sub-{s} exists but is not listed")
        subs = [s for s in listed if s in folder_set] + [s for s in folders if s not in listed_set]
    else:
        subs = folders
    good = []
    for s in subs:
        if _LABEL_RE.match(s):
            good.append(s)
        else:
            warnings.append(
                f"{root / ('sub-' + s)}: invalid subject label {s!r} (must be alphanumeric); skipped"
            )
    return good


def _listed_participants(part: Path, warnings: list[str]) -> list[str] | None:
    """Subject labels of ``participants.tsv`` in its order; None if it is unreadable."""
    try:
        cols = read_tsv(part, required=("participant_id",))
    except BidsError as err:
        warnings.append(f"{err}; participants.tsv ignored, subjects taken from the sub-* folders")
        return None
    listed = []
    for i, pid in enumerate(cols["participant_id"], start=2):
        if not pid.startswith("sub-"):
            warnings.append(
                f"{part}: line {i}: participant_id {pid!r} must start with 'sub-'; row ignored"
            )
            continue
        try:
            listed.append(validate_label(pid, "sub"))
        except BidsError as err:
            warnings.append(f"{part}: line {i}: {err}; row ignored")
    return list(dict.fromkeys(listed))


def discover(
    bids_root,
    subjects=None,
    task: str | None = None,
    sessions=None,
    runs=None,
) -> list[BidsRecording]:
    """Find the EEG recordings of a BIDS dataset.

    Parameters
    ----------
    bids_root : path-like
        Dataset root (with ``dataset_description.json``).
    subjects : sequence of str | None
        Subject labels (``"01"`` or ``"sub-01"``); None: all (from
        ``participants.tsv`` and ``sub-*`` folders).
    task : str | None
        Task label; None: all tasks.
    sessions, runs : sequence of str | None
        Session / run labels to keep; None: all.

    Returns
    -------
    list of BidsRecording
        Sorted by subject, session, task, acquisition, run.

    Raises
    ------
    BidsError
        Root missing, malformed ``participants.tsv`` or ``dataset_description.json``,
        invalid selection labels, or a requested subject/task that does not exist.
    """
    root = Path(bids_root)
    if not root.is_dir():
        raise BidsError(f"{root}: BIDS root folder not found")
    warnings: list[str] = []
    desc = root / "dataset_description.json"
    if desc.is_file():
        read_json(desc)
    else:
        warnings.append(f"{desc}: missing (required by BIDS)")
    all_subs = _subjects(root, warnings)
    if subjects is not None:
        if isinstance(subjects, str):
            subjects = [subjects]
        want = [validate_label(s, "sub") for s in subjects]
        missing = [s for s in want if s not in all_subs]
        if missing:
            raise BidsError(f"{root}: requested subjects {missing} not found (have {all_subs})")
        subs = want
    else:
        subs = all_subs
    if task is not None:
        task = validate_label(task, "task")
    if isinstance(sessions, str):
        sessions = [sessions]
    if isinstance(runs, str | int):
        runs = [runs]
    sess_set = None if sessions is None else {validate_label(s, "ses") for s in sessions}
    run_set = None if runs is None else {validate_label(r, "run") for r in runs}

    recs: list[BidsRecording] = []
    listings: dict = {}  # folder -> its BIDS-like file names (_listing), read once
    for sub in subs:
        sdir = root / f"sub-{sub}"
        ses_dirs = sorted(p for p in sdir.glob("ses-*") if p.is_dir())
        eeg_dirs = [(None, sdir / "eeg")] if not ses_dirs else []
        for sd in ses_dirs:
            lab = sd.name[4:]
            if not _LABEL_RE.match(lab):
                warnings.append(f"{sd}: invalid session label {lab!r}; skipped")
                continue
            eeg_dirs.append((lab, sd / "eeg"))
        for ses, edir in eeg_dirs:
            if sess_set is not None and not _label_selected(ses, sess_set):
                continue
            if not edir.is_dir():
                continue
            for p in sorted(edir.iterdir()):
                parsed = _parse_entities(p.name)
                if parsed is None:
                    continue
                ents, suffix, ext = parsed
                if suffix != "eeg" or ext.lower() not in _EXT_FORMAT:
                    continue
                bad = [k for k, v in ents.items() if not _LABEL_RE.match(v)]
                if bad or ents.get("sub") != sub or ("task" not in ents):
                    warnings.append(f"{p}: file name entities invalid ({bad or ents}); skipped")
                    continue
                if ses is not None and ents.get("ses") != ses:
                    warnings.append(
                        f"{p}: ses entity does not match folder {edir.parent.name}; skipped"
                    )
                    continue
                if task is not None and ents["task"] != task:
                    continue
                if run_set is not None and not _label_selected(ents.get("run"), run_set):
                    continue
                dirs = [edir] + ([edir.parent] if ses else []) + [sdir, root]
                rec_ents = {k: v for k, v in ents.items()}
                recs.append(
                    BidsRecording(
                        root=root,
                        subject=sub,
                        session=ents.get("ses"),
                        task=ents["task"],
                        run=ents.get("run"),
                        acquisition=ents.get("acq"),
                        data_path=p,
                        format=_EXT_FORMAT[ext.lower()],
                        channels_path=_sidecar(
                            rec_ents, dirs, "channels", ".tsv", listings=listings
                        ),
                        events_path=_sidecar(rec_ents, dirs, "events", ".tsv", listings=listings),
                        eeg_json_path=_sidecar(rec_ents, dirs, "eeg", ".json", listings=listings),
                        electrodes_path=_sidecar(
                            rec_ents, dirs, "electrodes", ".tsv", listings=listings
                        ),
                        coordsystem_path=_sidecar(
                            rec_ents, dirs, "coordsystem", ".json", listings=listings
                        ),
                    )
                )
    for w in warnings:
        _warnings.warn(w, BidsWarning, stacklevel=2)
    if task is not None and not recs:
        raise BidsError(f"{root}: no EEG recording for task {task!r} (subjects {subs})")
    key = lambda r: (r.subject, r.session or "", r.task, r.acquisition or "", r.run or "")  # noqa: E731
    recs.sort(key=key)
    if warnings:
        recs = [_with_warnings(r, warnings) for r in recs]
    return recs


def _label_selected(label: str | None, wanted: set[str]) -> bool:
    """Session and run labels match as text or, when both are numbers, by value
    ("01" == "1": YAML reads a config's 01 as the integer 1)."""
    if label is None:
        return False
    if label in wanted:
        return True
    return label.isdigit() and any(w.isdigit() and int(w) == int(label) for w in wanted)


def _with_warnings(rec: BidsRecording, warnings: list[str]) -> BidsRecording:
    mine = [w for w in warnings if f"sub-{rec.subject}" in w or "sub-" not in w]
    return replace(rec, warnings=tuple(mine))
