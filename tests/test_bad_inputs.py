"""Acceptance tests of issue 16 ("Reliability"): a generated corpus of bad inputs.

Every case copies one good generated subject (EDF, BrainVision or EEGLAB), breaks it
in one way, runs the workflow step that reads the broken part in-process (the step
functions with a SimpleNamespace ``snakemake``, as ``tests/test_steps.py`` does) and
asserts the exact outcome: an error whose message names the file and the problem, or a
warning recorded in the output file's ``warnings`` attribute (the step still succeeds),
or a specific result (a channel marked bad with its reason, epochs dropped, ...).

A representative subset runs through Snakemake once (``@pytest.mark.workflow``): one
good subject beside bad ones and an invalid subject folder; the good subject completes,
each bad one is recorded as failed in ``group/qc.tsv`` with its reason naming the file.
The run-level behaviour of issue 16 is tested here too: a run where every subject fails
exits non-zero, ``exgsrc retry`` reruns what failed, the output folder's lock, stale
temporaries, a full disk, and condition labels of awkward ``trial_type`` text.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.io

from exgsrc.config import load_schema, validate_config
from exgsrc.io.discovery import list_subjects
from exgsrc.io.edf import read_edf, read_edf_header
from exgsrc.labels import MAX_LABEL_LENGTH, condition_label
from exgsrc.simulate import _write_edf, make_demo_bids
from exgsrc.steps._run import run_step
from exgsrc.steps.headmodel import step_montage
from exgsrc.steps.preprocess import step_epochs, step_evoked
from exgsrc.store import open_dataset

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SUB = "01"
TASK = "demo"
BASE = f"sub-{SUB}_task-{TASK}"
CONDITIONS = ("a", "b")
#: every config key at its default, as the workflow fills them in
DEFAULTS = validate_config({}, load_schema(SCHEMA))

# file names of the good subject
EDF = f"{BASE}_eeg.edf"
VHDR, VEEG, VMRK = f"{BASE}_eeg.vhdr", f"{BASE}_eeg.eeg", f"{BASE}_eeg.vmrk"
SET, FDT = f"{BASE}_eeg.set", f"{BASE}_eeg.fdt"
CHANNELS = f"{BASE}_channels.tsv"
EVENTS = f"{BASE}_events.tsv"
EEG_JSON = f"{BASE}_eeg.json"
ELECTRODES = f"sub-{SUB}_space-CapTrak_electrodes.tsv"
COORDSYSTEM = f"sub-{SUB}_space-CapTrak_coordsystem.json"


# ---------------------------------------------------------------------------------------
# the good subject, in three formats


def _to_brainvision(eeg: Path, data_v: np.ndarray, names, sfreq: float) -> None:
    """Replace the EDF by a BrainVision recording (float32 µV, multiplexed)."""
    (eeg / EDF).unlink()
    lines = [
        "Brain Vision Data Exchange Header File Version 1.0",
        "[Common Infos]",
        "Codepage=UTF-8",
        f"DataFile={VEEG}",
        f"MarkerFile={VMRK}",
        "DataFormat=BINARY",
        "DataOrientation=MULTIPLEXED",
        f"NumberOfChannels={len(names)}",
        f"SamplingInterval={1e6 / sfreq:g}",
        "[Binary Infos]",
        "BinaryFormat=IEEE_FLOAT_32",
        "[Channel Infos]",
    ] + [f"Ch{i + 1}={n},,1,µV" for i, n in enumerate(names)]
    (eeg / VHDR).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (eeg / VMRK).write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n[Common Infos]\n"
        f"Codepage=UTF-8\nDataFile={VEEG}\n[Marker Infos]\nMk1=New Segment,,1,1,0\n",
        encoding="utf-8",
    )
    (data_v.T * 1e6).astype("<f4").tofile(eeg / VEEG)


def _to_eeglab(eeg: Path, data_v: np.ndarray, names, sfreq: float) -> None:
    """Replace the EDF by an EEGLAB .set whose data are in a separate .fdt file."""
    from eeglabio.raw import export_set

    (eeg / EDF).unlink()
    export_set(str(eeg / SET), data_v, sfreq, list(names))
    mat = scipy.io.loadmat(str(eeg / SET), squeeze_me=False, struct_as_record=True)
    mat = {k: v for k, v in mat.items() if not k.startswith("__")}
    mat["data"] = np.array([FDT])
    scipy.io.savemat(str(eeg / SET), mat)
    (data_v.T * 1e6).astype("<f4").tofile(eeg / FDT)


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """The good subject (8 EEG + 1 EOG channels, 100 Hz, 2 x 4 trials) as EDF,
    BrainVision and EEGLAB datasets."""
    base = tmp_path_factory.mktemp("good")
    edf = base / "edf"
    make_demo_bids(
        edf, n_subjects=1, conditions=CONDITIONS, seed=3, n_trials=4, n_channels=8, sfreq=100.0
    )
    raw = read_edf(edf / f"sub-{SUB}" / "eeg" / EDF)
    out = {"edf": edf}
    for fmt, convert in (("bv", _to_brainvision), ("set", _to_eeglab)):
        out[fmt] = base / fmt
        shutil.copytree(edf, out[fmt])
        convert(out[fmt] / f"sub-{SUB}" / "eeg", raw.data, raw.ch_names, raw.sfreq)
    return out


# ---------------------------------------------------------------------------------------
# running the steps in-process


class _Named(list):
    """Minimal stand-in for Snakemake's named lists (list + attributes + items())."""

    def __init__(self, **kw):
        super().__init__(kw.values())
        self.__dict__.update(kw)

    def items(self):
        return self.__dict__.items()


def _run(step, inputs, output, params, subject=SUB):
    """Run one step as Snakemake would, failures raised (``on_error: raise``)."""
    sm = SimpleNamespace(
        input=_Named(**inputs),
        output=[str(output)],
        params=SimpleNamespace(**params),
        wildcards=_Named(subject=subject),
        config={"on_error": "raise", "precision": "float64"},
        rule=step.__name__.removeprefix("step_"),
        log=[str(Path(output).with_suffix(".log"))],
    )
    run_step(sm, step)
    return Path(output)


def _params(root, overrides=None, conditions=CONDITIONS):
    """The params the montage and epochs rules pass, from the config defaults."""
    cfg = json.loads(json.dumps(DEFAULTS))
    for key, value in (overrides or {}).items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return {
        "bids_root": str(root),
        "task": TASK,
        "selection": {"session": None, "runs": None},
        "fallback": cfg["montage"]["fallback"],
        "data_checks": cfg["data_checks"],
        "conditions": list(conditions),
        "filter": cfg["filter"],
        "epochs": cfg["epochs"],
        "reject": cfg["reject"],
    }


def run_steps(root: Path, out: Path, upto: str, overrides=None, conditions=CONDITIONS):
    """montage [-> epochs [-> evoked of each condition]] of the subject; the files.

    ``upto="subjects"``: the subject discovery of the workflow's DAG
    (:func:`exgsrc.io.discovery.list_subjects`): ``{"subjects": ..., "warnings": ...}``.
    """
    if upto == "subjects":
        subjects, warnings = list_subjects(root)
        return {"subjects": subjects, "warnings": warnings}
    p = _params(root, overrides, conditions)
    files = {"montage": _run(step_montage, {}, out / "montage.nc", p)}
    if upto in ("epochs", "evoked"):
        files["epochs"] = _run(step_epochs, {"montage": files["montage"]}, out / "epo.nc", p)
    if upto == "evoked":
        for cond in p["conditions"]:
            files[f"evoked {cond}"] = _run(
                step_evoked,
                {"epochs": files["epochs"]},
                out / f"cond-{condition_label(cond)}_ave.nc",
                {"condition": cond},
            )
    return files


def _warnings_of(path: Path) -> list[str]:
    return list(open_dataset(path, attrs_only=True).attrs.get("warnings", []))


# ---------------------------------------------------------------------------------------
# how to break a good subject (each takes the dataset root)


def _eeg(root: Path) -> Path:
    return root / f"sub-{SUB}" / "eeg"


def _rows(path: Path) -> list[list[str]]:
    return [ln.split("\t") for ln in path.read_text(encoding="utf-8").splitlines() if ln]


def _write_rows(path: Path, rows) -> None:
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")


def edit_tsv(name: str, edit: Callable[[list[list[str]]], list[list[str]]]):
    def breaker(root):
        path = _eeg(root) / name
        _write_rows(path, edit(_rows(path)))

    return breaker


def set_cell(name: str, row_name: str, column: str, value: str):
    """Set one cell of a TSV (row chosen by its first field)."""

    def edit(rows):
        j = rows[0].index(column)
        for r in rows[1:]:
            if r[0] == row_name:
                r[j] = value
        return rows

    return edit_tsv(name, edit)


def drop_column(name: str, column: str):
    def edit(rows):
        j = rows[0].index(column)
        return [r[:j] + r[j + 1 :] for r in rows]

    return edit_tsv(name, edit)


def add_subject_folder(label: str):
    """A copy of the good subject under another folder name (files keep sub-01)."""

    def breaker(root):
        shutil.copytree(root / f"sub-{SUB}", root / f"sub-{label}")

    return breaker


def append_participant(*fields: str):
    def breaker(root):
        path = root / "participants.tsv"
        path.write_text(path.read_text() + "\t".join(fields) + "\n")

    return breaker


def write_text(name: str, text: str | bytes):
    def breaker(root):
        path = _eeg(root) / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return breaker


def remove(*names: str):
    def breaker(root):
        for n in names:
            (_eeg(root) / n).unlink()

    return breaker


def edit_json(name: str, edit: Callable[[dict], dict]):
    def breaker(root):
        path = _eeg(root) / name
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))

    return breaker


def _without(d: dict, key: str) -> dict:
    d.pop(key)
    return d


def patch_bytes(name: str, offset: int | Callable[[Path], int], width: int, text: str):
    """Overwrite a fixed-width ASCII field of a binary header."""

    def breaker(root):
        path = _eeg(root) / name
        b = bytearray(path.read_bytes())
        at = offset(path) if callable(offset) else offset
        b[at : at + width] = text.ljust(width).encode("ascii")
        path.write_bytes(bytes(b))

    return breaker


def truncate(name: str, keep: int | Callable[[int], int]):
    def breaker(root):
        path = _eeg(root) / name
        data = path.read_bytes()
        path.write_bytes(data[: keep(len(data)) if callable(keep) else keep])

    return breaker


def _edf_signal_field(block: int, signal: int = 0):
    """Offset of a per-signal EDF header field: block 0 label (16), 1 transducer (80),
    2 dimension (8), 3 physical min, 4 physical max, 5 digital min, 6 digital max (8)."""
    widths = (16, 80, 8, 8, 8, 8, 8, 80, 8)

    def offset(path):
        n_sig = read_edf_header(path)["n_signals"]
        return 256 + n_sig * sum(widths[:block]) + widths[block] * signal

    return offset


def edit_edf_data(edit: Callable[[np.ndarray, tuple], None]):
    """Rewrite the EDF with edited samples (µV)."""

    def breaker(root):
        path = _eeg(root) / EDF
        raw = read_edf(path)
        data_uv = raw.data * 1e6
        edit(data_uv, raw.ch_names)
        _write_edf(path, data_uv, raw.ch_names, raw.sfreq, ["uV"] * len(raw.ch_names))

    return breaker


def _flat_fz(data_uv, names):
    data_uv[names.index("Fz")] = 12.5


def edit_samples(data_file: str, edit: Callable[[np.ndarray], None], n_ch: int = 9):
    """Edit the float32 samples of a BrainVision .eeg or EEGLAB .fdt (multiplexed)."""

    def breaker(root):
        path = _eeg(root) / data_file
        x = np.fromfile(path, "<f4").reshape(-1, n_ch).T.copy()
        edit(x)
        x.T.astype("<f4").tofile(path)

    return breaker


def _nan_at_5s(x):
    x[2, 500:503] = np.nan


def _inf_at_5s(x):
    x[3, 500] = np.inf


def edit_vhdr(old: str, new: str):
    def breaker(root):
        path = _eeg(root) / VHDR
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return breaker


def big_endian(root):
    """Store the samples big-endian and say so in the header (a valid file)."""
    path = _eeg(root) / VEEG
    np.fromfile(path, "<f4").astype(">f4").tofile(path)
    edit_vhdr("BinaryFormat=IEEE_FLOAT_32", "BinaryFormat=IEEE_FLOAT_32\nUseBigEndianOrder=YES")(
        root
    )


def markers_instead_of_events_tsv(root):
    """The events as BrainVision Stimulus markers (1-based positions); no events.tsv."""
    rows = _rows(_eeg(root) / EVENTS)
    j = rows[0].index("sample")
    marks = [f"Mk{k + 2}=Stimulus,{r[2]},{int(r[j]) + 1},1,0" for k, r in enumerate(rows[1:])]
    with (_eeg(root) / VMRK).open("a", encoding="utf-8") as fh:
        fh.write("\n".join(marks) + "\n")
    (_eeg(root) / EVENTS).unlink()


def events_without(trial_type: str):
    return edit_tsv(EVENTS, lambda rows: [r for r in rows if r[2] != trial_type])


def append_event(onset: str, trial_type: str):
    return edit_tsv(EVENTS, lambda rows: rows + [[onset, "0", trial_type, "1", "0"]])


def scale_positions(factor: float):
    def edit(rows):
        return [rows[0]] + [[r[0]] + [f"{float(v) * factor:.6g}" for v in r[1:]] for r in rows[1:]]

    return edit_tsv(ELECTRODES, edit)


def all_good(rows):
    j = rows[0].index("status")
    return [rows[0]] + [r[:j] + ["good"] + r[j + 1 :] for r in rows[1:]]


def all_positions_na(rows):
    return [rows[0]] + [[r[0], "n/a", "n/a", "n/a"] for r in rows[1:]]


def relabel_trials(new: str):
    """Rename condition 'a' (its events) to ``new``."""

    def edit(rows):
        return [rows[0]] + [r[:2] + [new if r[2] == "a" else r[2]] + r[3:] for r in rows[1:]]

    return edit_tsv(EVENTS, edit)


def _only_the_good_subject(files):
    assert files["subjects"] == [SUB]


# ---------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class Case:
    """One bad input: how to break the good subject, which step reads it, what happens.

    ``outcome``: ``"error"`` (the step raises; every string of ``expect`` is in the
    message), ``"warning"`` (the steps succeed; one warning of the last output file
    holds every string of ``expect``) or ``"check"`` (the steps succeed). ``check``,
    when given, gets the output files (after the warning is found).
    """

    name: str
    breaker: Callable[[Path], None]
    step: str  # "montage", "epochs" or "evoked": run up to that step
    outcome: str
    expect: tuple[str, ...] = ()
    fmt: str = "edf"  # which good subject: "edf", "bv" or "set"
    overrides: dict = field(default_factory=dict)
    conditions: tuple[str, ...] = CONDITIONS
    check: Callable[[dict], None] | None = None


def _flat_marked_bad(files):
    mont = open_dataset(files["montage"])
    i = list(mont["channel"].values).index("Fz")
    assert mont["status"].values[i] == "bad" and not mont["used"].values[i]
    assert str(mont["excluded_reason"].values[i]).startswith("bad: flat (standard deviation")
    assert any(EDF in w and "channel Fz is flat" in w for w in mont.attrs["warnings"])
    assert "Fz" not in open_dataset(files["epochs"])["channel"].values


def _nonfinite_dropped(files):
    epo = open_dataset(files["epochs"])
    dropped = [d for d in epo.attrs["drop_log"] if d]
    assert dropped == [["BAD_nonfinite"]]  # the one epoch over t = 5 s
    details = [d for d in epo.attrs["drop_details"] if d["reason"] == "annotation"]
    assert "overlaps annotation 'BAD_nonfinite'" in details[0]["detail"]
    assert any(
        VEEG in w and "3 non-finite samples (3 NaN, 0 Inf)" in w and "BAD_nonfinite" in w
        for w in epo.attrs["warnings"]
    )
    assert epo.sizes["epoch"] == 7 and np.isfinite(epo["epochs"].values).all()


def _big_endian_read(files):
    epo = open_dataset(files["epochs"])
    assert epo.sizes["epoch"] == 8 and not epo.attrs["warnings"]


def _label_ok(text):
    def check(files):
        epo = open_dataset(files["epochs"])
        assert sorted(set(epo["condition"].values)) == sorted([text, "b"])
        label = files[f"evoked {text}"].name.removesuffix("_ave.nc").removeprefix("cond-")
        assert label == condition_label(text) and len(label) <= MAX_LABEL_LENGTH
        assert open_dataset(files[f"evoked {text}"]).attrs["condition"] == text

    return check


def _eight_epochs(files):
    epo = open_dataset(files["epochs"])
    assert sorted(epo["condition"].values) == ["a"] * 4 + ["b"] * 4


def _absent_condition(files):
    epo = open_dataset(files["epochs"])
    assert epo.attrs["epoch_counts"]["b"] == {"total": 0, "kept": 0, "dropped": 0}
    assert set(epo["condition"].values) == {"a"}


def _unit_from_channels_tsv(files):
    """An EDF signal in an unknown unit takes channels.tsv's: the amplitude check judges
    the converted values (it judged the raw numbers before: Fz marked bad, 150 V)."""
    mont = open_dataset(files["montage"])
    i = list(mont["channel"].values).index("Fz")
    assert mont["status"].values[i] == "good" and mont["used"].values[i]
    warnings = mont.attrs["warnings"]
    assert any(
        EDF in w and "unit 'furlong' of channel Fz is not a voltage; using 'uV'" in w
        for w in warnings
    ), warnings
    assert not any("implausible" in w for w in warnings), warnings


QUOTED = '"quoted'  # a trial_type that starts with a double quote
CHINESE = "视觉刺激条件" * 4 + "左侧视野高对比"  # 28 characters, 84 UTF-8 bytes


CASES = [
    # ---- events.tsv: malformed
    Case(
        "events ragged row",
        edit_tsv(EVENTS, lambda rows: rows[:3] + [rows[3] + ["extra"]] + rows[4:]),
        "epochs",
        "error",
        (EVENTS, "line 4 has 6 fields but the header has 5", "malformed TSV"),
    ),
    Case(
        "events quoted field with a tab",
        edit_tsv(
            EVENTS, lambda rows: rows[:2] + [rows[2][:2] + ['"a\tb"'] + rows[2][3:]] + rows[3:]
        ),
        "epochs",
        "error",
        (EVENTS, "line 3 has 6 fields but the header has 5"),
    ),
    Case(
        "events duplicate columns",
        edit_tsv(
            EVENTS,
            lambda rows: [["onset", "duration", "trial_type", "onset", "sample"]] + rows[1:],
        ),
        "epochs",
        "error",
        (EVENTS, "duplicate column names in header"),
    ),
    Case(
        "events without onset column",
        drop_column(EVENTS, "onset"),
        "epochs",
        "error",
        (EVENTS, "required column(s) ['onset'] missing"),
    ),
    Case(
        "events not UTF-8",
        write_text(EVENTS, "onset\tduration\ttrial_type\n2\t0\tcaf\xe9\n".encode("latin-1")),
        "epochs",
        "error",
        (EVENTS, "not UTF-8 text"),
    ),
    Case("events empty", write_text(EVENTS, ""), "epochs", "error", (EVENTS, "empty TSV file")),
    Case(
        "events header only",
        edit_tsv(EVENTS, lambda rows: rows[:1]),
        "epochs",
        "error",
        (EVENTS, "no events"),
    ),
    Case(
        "events onset not a number",
        set_cell(EVENTS, "2", "onset", "two"),
        "epochs",
        "error",
        (EVENTS, "column 'onset' line 2: cannot read 'two' as a number"),
    ),
    Case(
        "events onset n/a",
        set_cell(EVENTS, "2", "onset", "n/a"),
        "epochs",
        "error",
        (EVENTS, "onset is n/a on lines [2]"),
    ),
    Case(
        "events without trial_type or value",
        edit_tsv(EVENTS, lambda rows: [r[:2] for r in rows]),
        "epochs",
        "error",
        (EVENTS, "no column 'trial_type' for the condition codes"),
    ),
    Case(
        "events without trial_type column",
        drop_column(EVENTS, "trial_type"),
        "epochs",
        "error",
        (EVENTS, "no column 'trial_type' for the condition codes"),
    ),
    Case(
        "events.tsv missing, no events in the data file",
        remove(EVENTS),
        "epochs",
        "error",
        (EDF, f"no events.tsv found for {BASE} and no events in the data file"),
    ),
    Case(
        "events.tsv missing, BrainVision markers",
        markers_instead_of_events_tsv,
        "epochs",
        "warning",
        (VHDR, "no events.tsv; 8 events taken from the data file"),
        fmt="bv",
        check=_eight_epochs,
    ),
    Case(
        "events trial_type n/a rows",
        set_cell(EVENTS, "2", "trial_type", "n/a"),
        "epochs",
        "warning",
        (EVENTS, "1 events with trial_type n/a ignored"),
    ),
    Case(
        "event onset beyond the recording",
        append_event("1000", "a"),
        "epochs",
        "warning",
        (EVENTS, "beyond the end of the recording", EDF),
    ),
    Case(
        "condition absent from the subject",
        events_without("b"),
        "epochs",
        "warning",
        (EVENTS, "no event of condition(s) ['b']"),
        check=_absent_condition,
    ),
    Case(
        "condition absent: its evoked response",
        events_without("b"),
        "evoked",
        "error",
        ("average: condition 'b' (event codes []) has no epochs (conditions present: ['a'])",),
    ),
    Case(
        "no event of any condition kept",
        edit_tsv(CHANNELS, all_good),  # the noisy channel rejects every epoch
        "epochs",
        "error",
        (
            "no epoch of any condition",
            EVENTS,
            "all 8 epochs of the conditions dropped (peak-to-peak)",
        ),
    ),
    Case(
        "trial_type starting with a quote",
        relabel_trials(QUOTED),
        "evoked",
        "check",
        conditions=(QUOTED, "b"),
        check=_label_ok(QUOTED),
    ),
    Case(
        "trial_type of 28 Chinese characters",
        relabel_trials(CHINESE),
        "evoked",
        "check",
        conditions=(CHINESE, "b"),
        check=_label_ok(CHINESE),
    ),
    # ---- channels.tsv
    Case(
        "channels ragged row",
        edit_tsv(CHANNELS, lambda rows: rows[:2] + [rows[2][:3]] + rows[3:]),
        "montage",
        "error",
        (CHANNELS, "line 3 has 3 fields but the header has 6"),
    ),
    Case(
        "channels without units column",
        drop_column(CHANNELS, "units"),
        "montage",
        "error",
        (CHANNELS, "required column(s) ['units'] missing"),
    ),
    Case(
        "channels duplicate names",
        set_cell(CHANNELS, "F3", "name", "Fz"),
        "montage",
        "error",
        (CHANNELS, "duplicate channel names ['Fz']"),
    ),
    Case(
        "channels row not in the data",
        edit_tsv(CHANNELS, lambda rows: rows + [["X1", "EEG", "uV", "100", "good", "n/a"]]),
        "montage",
        "error",
        (CHANNELS, f"channels do not match {EDF}", "only in channels.tsv ['X1']"),
    ),
    Case(
        "data channel not in channels.tsv",
        set_cell(CHANNELS, "F3", "name", "F3x"),
        "montage",
        "error",
        (CHANNELS, "only in channels.tsv ['F3x'], only in data ['F3']"),
    ),
    Case(
        "channels unknown unit (file has one)",
        set_cell(CHANNELS, "Fz", "units", "furlong"),
        "montage",
        "warning",
        (CHANNELS, "unknown unit 'furlong' for Fz; the data file's 'uV' is used"),
    ),
    Case(
        "channels unknown unit (EEGLAB)",
        set_cell(CHANNELS, "Fz", "units", "furlong"),
        "montage",
        "error",
        (CHANNELS, "unknown unit 'furlong' for channel Fz"),
        fmt="set",
    ),
    Case(
        "channels unit differs from the file",
        set_cell(CHANNELS, "Fz", "units", "mV"),
        "montage",
        "warning",
        (CHANNELS, "unit 'mV' for Fz differs from the data file's 'uV'"),
    ),
    Case(
        "channels unknown type",
        set_cell(CHANNELS, "Fz", "type", "FOO"),
        "montage",
        "warning",
        (CHANNELS, "unknown type 'FOO' for Fz; taken as misc"),
    ),
    Case(
        "channels invalid status",
        set_cell(CHANNELS, "Fz", "status", "maybe"),
        "montage",
        "warning",
        (CHANNELS, "status 'maybe' for Fz is not good/bad"),
    ),
    Case(
        "channels.tsv missing",
        remove(CHANNELS),
        "montage",
        "warning",
        (EDF, "no channels.tsv found; all channels taken as EEG"),
    ),
    Case(
        "channels not UTF-8",
        write_text(CHANNELS, "name\ttype\tunits\nF\xe9\tEEG\tuV\n".encode("latin-1")),
        "montage",
        "error",
        (CHANNELS, "not UTF-8 text"),
    ),
    # ---- data file channel names and units
    Case(
        "EDF duplicate channel labels",
        patch_bytes(EDF, _edf_signal_field(0, 1), 16, "Fp1"),
        "montage",
        "error",
        (EDF, "duplicate channel names ['Fp1']"),
    ),
    Case(
        "BrainVision duplicate channel names",
        edit_vhdr("Ch2=Fp2,", "Ch2=Fp1,"),
        "montage",
        "error",
        (VHDR, "duplicate channel names ['Fp1']"),
        fmt="bv",
    ),
    Case(
        "EDF unknown unit of an EEG channel",
        patch_bytes(EDF, _edf_signal_field(2, 6), 8, "furlong"),
        "montage",
        "check",
        check=_unit_from_channels_tsv,
    ),
    Case(
        "EDF and channels.tsv both without a known unit",
        lambda root: (
            patch_bytes(EDF, _edf_signal_field(2, 6), 8, "furlong")(root),
            set_cell(CHANNELS, "Fz", "units", "n/a")(root),
        ),
        "montage",
        "error",
        (EDF, "unknown unit 'furlong' for EEG channel Fz"),
    ),
    # ---- electrodes.tsv
    Case(
        "electrodes in mm declared as m",
        scale_positions(1000.0),
        "montage",
        "error",
        (ELECTRODES, "positions span a sphere of radius", "the values look like 'mm'"),
    ),
    Case(
        "electrodes non-numeric",
        set_cell(ELECTRODES, "Fz", "x", "left"),
        "montage",
        "error",
        (ELECTRODES, "column 'x' line 8: cannot read 'left' as a number"),
    ),
    Case(
        "electrodes all n/a",
        edit_tsv(ELECTRODES, all_positions_na),
        "montage",
        "error",
        (ELECTRODES, "no electrode has a position"),
    ),
    Case(
        "electrodes one n/a",
        set_cell(ELECTRODES, "Fz", "x", "n/a"),
        "montage",
        "warning",
        (ELECTRODES, "no position for ['Fz']"),
    ),
    Case(
        "electrodes without z column",
        drop_column(ELECTRODES, "z"),
        "montage",
        "error",
        (ELECTRODES, "required column(s) ['z'] missing"),
    ),
    Case(
        "electrodes duplicate names",
        set_cell(ELECTRODES, "F3", "name", "Fz"),
        "montage",
        "error",
        (ELECTRODES, "duplicate electrode names ['Fz']"),
    ),
    Case(
        "electrodes.tsv missing (fallback)",
        remove(ELECTRODES, COORDSYSTEM),
        "montage",
        "warning",
        (EDF, "no electrodes.tsv; using positions of standard_1005"),
    ),
    Case(
        "electrodes.tsv missing, no fallback",
        remove(ELECTRODES, COORDSYSTEM),
        "montage",
        "error",
        (EDF, "no electrodes.tsv and no fallback montage"),
        overrides={"montage": {"fallback": None}},
    ),
    # ---- coordsystem.json
    Case(
        "coordsystem malformed JSON",
        write_text(COORDSYSTEM, '{"EEGCoordinateUnits": "m",'),
        "montage",
        "error",
        (COORDSYSTEM, "malformed JSON"),
    ),
    Case(
        "coordsystem not an object",
        write_text(COORDSYSTEM, '["m"]'),
        "montage",
        "error",
        (COORDSYSTEM, "JSON sidecar must be an object, got list"),
    ),
    Case(
        "coordsystem without units",
        edit_json(COORDSYSTEM, lambda d: _without(d, "EEGCoordinateUnits")),
        "montage",
        "error",
        (COORDSYSTEM, "required key 'EEGCoordinateUnits' missing"),
    ),
    Case(
        "coordsystem unknown units",
        edit_json(COORDSYSTEM, lambda d: {**d, "EEGCoordinateUnits": "furlong"}),
        "montage",
        "error",
        (COORDSYSTEM, "furlong"),
    ),
    Case(
        "coordsystem unknown frame",
        edit_json(COORDSYSTEM, lambda d: {**d, "EEGCoordinateSystem": "Mars"}),
        "montage",
        "warning",
        (COORDSYSTEM, "EEGCoordinateSystem 'Mars' is not a coordinate system exgsrc knows"),
    ),
    Case(
        "coordsystem.json missing",
        remove(COORDSYSTEM),
        "montage",
        "warning",
        (ELECTRODES, "no coordsystem"),
    ),
    # ---- eeg.json
    Case(
        "eeg.json missing",
        remove(EEG_JSON),
        "epochs",
        "warning",
        (EDF, "no *_eeg.json sidecar found"),
    ),
    Case(
        "eeg.json malformed",
        write_text(EEG_JSON, "{SamplingFrequency: 100}"),
        "montage",
        "error",
        (EEG_JSON, "malformed JSON"),
    ),
    Case(
        "eeg.json SamplingFrequency not a number",
        edit_json(EEG_JSON, lambda d: {**d, "SamplingFrequency": "fast"}),
        "montage",
        "error",
        (EEG_JSON, "SamplingFrequency 'fast' is not a number"),
    ),
    Case(
        "EDF sampling rate disagrees with eeg.json",
        edit_json(EEG_JSON, lambda d: {**d, "SamplingFrequency": 250}),
        "montage",
        "error",
        (EDF, "= 100 Hz, but", EEG_JSON, "SamplingFrequency is 250 Hz"),
    ),
    Case(
        "BrainVision sampling rate disagrees with eeg.json",
        edit_json(EEG_JSON, lambda d: {**d, "SamplingFrequency": 250}),
        "epochs",
        "warning",
        (EEG_JSON, "SamplingFrequency 250.0 Hz differs from the data file's 100.0 Hz"),
        fmt="bv",
    ),
    # ---- EDF header lies
    Case(
        "EDF record duration 0",
        patch_bytes(EDF, 244, 8, "0"),
        "montage",
        "error",
        (EDF, "header field 'duration of a data record' is 0.0 s; it must be positive"),
    ),
    Case(
        "EDF record duration 1e-6",
        patch_bytes(EDF, 244, 8, "1e-6"),
        "montage",
        "error",
        (EDF, "record duration 1e-06 s = 1e+08 Hz, an implausible sampling rate"),
    ),
    Case(
        "EDF digital min == max",
        lambda root: (
            patch_bytes(EDF, _edf_signal_field(5, 0), 8, "100")(root),
            patch_bytes(EDF, _edf_signal_field(6, 0), 8, "100")(root),
        ),
        "montage",
        "error",
        (EDF, "signal 'Fp1': digital minimum 100 equals digital maximum 100"),
    ),
    Case(
        "EDF truncated data record",
        truncate(EDF, lambda n: n - 150),
        "epochs",
        "warning",
        (EDF, "truncated data file"),
    ),
    Case(
        "EDF header only",
        truncate(EDF, 256 * 11),
        "montage",
        "error",
        (EDF,),
    ),
    # ---- BrainVision
    Case(
        "BrainVision .eeg missing",
        remove(VEEG),
        "montage",
        "error",
        (VHDR, f"header points to data file {VEEG!r}, which is missing"),
        fmt="bv",
    ),
    Case(
        "BrainVision .vmrk missing",
        remove(VMRK),
        "epochs",
        "warning",
        (VHDR, f"marker file {VMRK!r} missing"),
        fmt="bv",
    ),
    Case(
        "BrainVision wrong DataFile name",
        edit_vhdr(f"DataFile={VEEG}", "DataFile=recording.eeg"),
        "montage",
        "error",
        (VHDR, "header points to data file 'recording.eeg', which is missing"),
        fmt="bv",
    ),
    Case(
        "BrainVision INT_16 declared, float32 data",
        edit_vhdr("BinaryFormat=IEEE_FLOAT_32", "BinaryFormat=INT_16"),
        "montage",
        "error",
        (VHDR, "only 0 good EEG channels", "excluded: bad: full scale (spans 100% of the"),
        fmt="bv",
    ),
    Case(
        "BrainVision INT_16 declared with DataPoints",
        lambda root: (
            edit_vhdr("BinaryFormat=IEEE_FLOAT_32", "BinaryFormat=INT_16")(root),
            edit_vhdr("DataFormat=BINARY", "DataFormat=BINARY\nDataPoints=1400")(root),
        ),
        "montage",
        "error",
        (VEEG, "data file has 50400 bytes but the header declares DataPoints=1400"),
        fmt="bv",
    ),
    Case(
        "BrainVision big-endian data declared",
        big_endian,
        "epochs",
        "check",
        fmt="bv",
        check=_big_endian_read,
    ),
    Case(
        "BrainVision invalid byte order",
        edit_vhdr("BinaryFormat=IEEE_FLOAT_32", "BinaryFormat=IEEE_FLOAT_32\nUseBigEndianOrder=1"),
        "montage",
        "error",
        (VHDR, "UseBigEndianOrder='1' (YES or NO)"),
        fmt="bv",
    ),
    Case(
        "BrainVision truncated mid-sample",
        truncate(VEEG, lambda n: n - 8),
        "epochs",
        "warning",
        (VEEG, "truncated data file (50392 bytes); incomplete last sample dropped"),
        fmt="bv",
    ),
    Case(
        "BrainVision truncated mid-value",
        truncate(VEEG, lambda n: n - 6),
        "montage",
        "error",
        (VEEG, "50394 bytes, not a whole number of IEEE_FLOAT_32 values", VHDR),
        fmt="bv",
    ),
    Case(
        "BrainVision NaN samples",
        edit_samples(VEEG, _nan_at_5s),
        "montage",
        "error",
        (VEEG, "3 non-finite samples (3 NaN, 0 Inf)", "channel 'AF3', t = 5 s", "bad_segment"),
        fmt="bv",
    ),
    Case(
        "BrainVision NaN samples as bad segments",
        edit_samples(VEEG, _nan_at_5s),
        "epochs",
        "check",
        fmt="bv",
        overrides={"data_checks": {"nonfinite": "bad_segment"}},
        check=_nonfinite_dropped,
    ),
    # ---- EEGLAB
    Case(
        "EEGLAB .fdt missing",
        remove(FDT),
        "montage",
        "error",
        (SET, f"header points to data file {FDT!r}, which is missing"),
        fmt="set",
    ),
    Case(
        "EEGLAB .fdt short",
        truncate(FDT, lambda n: n - 400),
        "montage",
        "error",
        (FDT, "truncated data file", "9 channels x 1400 samples float32"),
        fmt="set",
    ),
    Case(
        "EEGLAB .fdt long",
        lambda root: (_eeg(root) / FDT).open("ab").write(b"\0" * 36),
        "montage",
        "error",
        (FDT, "data file has 50436 bytes but the header declares nbchan=9 x pnts=1400"),
        fmt="set",
    ),
    Case(
        "EEGLAB Inf sample",
        edit_samples(FDT, _inf_at_5s),
        "montage",
        "error",
        (SET, "1 non-finite samples (0 NaN, 1 Inf)", "channel 'AF4', t = 5 s"),
        fmt="set",
    ),
    # ---- subject folders and participants.tsv (read while Snakemake builds the DAG)
    Case(
        "subject folder with a space",
        add_subject_folder("0 1"),
        "subjects",
        "warning",
        ("sub-0 1: invalid subject label '0 1' (must be alphanumeric); skipped",),
        check=_only_the_good_subject,
    ),
    Case(
        "subject folder with a non-ASCII letter",
        add_subject_folder("ü1"),
        "subjects",
        "warning",
        ("sub-ü1: invalid subject label 'ü1' (must be alphanumeric); skipped",),
        check=_only_the_good_subject,
    ),
    Case(
        "participants.tsv lists a missing subject",
        append_participant("sub-02", "90"),
        "subjects",
        "warning",
        ("participants.tsv: subject sub-02 listed but folder", "sub-02 missing"),
        check=_only_the_good_subject,
    ),
    Case(
        "participants.tsv ragged",
        append_participant("sub-02"),
        "subjects",
        "warning",
        (
            "participants.tsv: line 3 has 1 fields but the header has 2",
            "participants.tsv ignored, subjects taken from the sub-* folders",
        ),
        check=_only_the_good_subject,
    ),
    Case(
        "participants.tsv id without sub-",
        append_participant("02", "90"),
        "subjects",
        "warning",
        ("participants.tsv: line 3: participant_id '02' must start with 'sub-'; row ignored",),
        check=_only_the_good_subject,
    ),
    Case(
        "participants.tsv id with an invalid label",
        append_participant("sub-0_2", "90"),
        "subjects",
        "warning",
        ("participants.tsv: line 3: invalid BIDS sub label 'sub-0_2'", "row ignored"),
        check=_only_the_good_subject,
    ),
    # ---- a flat channel
    Case(
        "flat channel",
        edit_edf_data(_flat_fz),
        "epochs",
        "check",
        check=_flat_marked_bad,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, templates, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(templates[case.fmt], root)
    case.breaker(root)
    out = tmp_path / "out"
    if case.outcome == "error":
        with pytest.raises(ValueError) as err:  # BidsError is a ValueError
            run_steps(root, out, case.step, case.overrides, case.conditions)
        msg = str(err.value)
        missing = [s for s in case.expect if s not in msg]
        assert not missing, f"{missing} not in: {msg}"
        return
    files = run_steps(root, out, case.step, case.overrides, case.conditions)
    assert case.outcome in ("warning", "check"), case.outcome
    if case.outcome == "warning":
        if case.step == "subjects":
            warnings = files["warnings"]
        else:
            last = files[case.step if case.step != "evoked" else next(reversed(files))]
            warnings = _warnings_of(last)
        assert any(all(s in w for s in case.expect) for w in warnings), warnings
    if case.check is not None:
        case.check(files)


# ---------------------------------------------------------------------------------------
# through Snakemake: bad subjects beside a good one


FAST_CONFIG = {
    "output": "results",
    "task": TASK,
    "conditions": ["a"],
    "source_space": {"kind": "ico", "grade": 2},
    "inverse": {"methods": ["sLORETA"]},
    "resolution": {"enabled": False},
}


def snakemake(workdir: Path, bids_root: Path, *args, timeout=600, **config):
    """Run the workflow on ``bids_root`` in ``workdir`` (2 cores); the completed process.

    The config (:data:`FAST_CONFIG` updated by ``config``) is written to
    ``workdir/config.yaml``; the command is the same for every call with the same config.
    """
    cfg = {**FAST_CONFIG, "bids_root": str(bids_root), **config}
    (workdir / "config.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir)]
    cmd += ["--cores", "2", "--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the jobs import this tree
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=env
    )
    res.log = res.stdout + res.stderr
    return res


def _qc(workdir: Path) -> dict[str, dict]:
    with open(workdir / "results" / "group" / "qc.tsv", newline="") as fh:
        return {r["subject"]: r for r in csv.DictReader(fh, delimiter="\t")}


def _rename_subject(root: Path, old: str, new: str) -> None:
    """Move a generated subject to another label (folder and file names)."""
    src, dst = root / f"sub-{old}", root / f"sub-{new}"
    src.rename(dst)
    for p in (dst / "eeg").iterdir():
        p.rename(p.with_name(p.name.replace(f"sub-{old}_", f"sub-{new}_")))


#: bad subjects of the workflow run: (label, how to break it (on a dataset whose only
#: subject is sub-01), failed step in qc.tsv, file named in the reason, problem words)
WORKFLOW_BAD = [
    ("02", scale_positions(1000.0), "montage", ELECTRODES, "the values look like 'mm'"),
    ("03", edit_tsv(EVENTS, lambda rows: rows[:1]), "epochs", EVENTS, "no events"),
    ("04", patch_bytes(EDF, 244, 8, "0"), "montage", EDF, "'duration of a data record' is 0.0"),
    ("05", set_cell(CHANNELS, "F3", "name", "F3x"), "montage", CHANNELS, "channels do not match"),
]


@pytest.fixture(scope="module")
def mixed_run(templates, tmp_path_factory):
    """One good subject, four bad ones and an invalid subject folder, run once."""
    base = tmp_path_factory.mktemp("mixed")
    root = base / "bids"
    shutil.copytree(templates["edf"], root)
    (root / "participants.tsv").unlink()  # subjects from the folders
    for label, breaker, *_ in WORKFLOW_BAD:
        one = base / f"one-{label}"
        shutil.copytree(templates["edf"], one)
        breaker(one)
        _rename_subject(one, SUB, label)
        shutil.move(one / f"sub-{label}", root / f"sub-{label}")
    shutil.copytree(root / f"sub-{SUB}", root / "sub-0 1")
    wd = base / "wd"
    wd.mkdir()
    return SimpleNamespace(root=root, wd=wd, res=snakemake(wd, root))


@pytest.mark.workflow
def test_workflow_good_subject_completes_beside_bad_ones(mixed_run):
    res, wd = mixed_run.res, mixed_run.wd
    assert res.returncode == 0, res.log[-5000:]
    qc = _qc(wd)
    assert sorted(qc) == ["01", "02", "03", "04", "05"]  # "sub-0 1" skipped
    assert qc["01"]["status"] == "ok", qc["01"]
    stc = wd / "results" / f"sub-{SUB}" / "eeg" / f"{BASE}_cond-a_desc-sLORETA_stc.nc"
    assert open_dataset(stc, attrs_only=True).attrs["exgsrc_status"] == "ok"
    ga = open_dataset(wd / "results" / "group" / f"task-{TASK}_cond-a_desc-sLORETA_grandavg.nc")
    assert list(ga.attrs["subjects"]) == [SUB]
    assert sorted(ga.attrs["failed_subjects"]) == ["02", "03", "04", "05"]


@pytest.mark.workflow
@pytest.mark.parametrize("label,step,file,problem", [(b[0], *b[2:]) for b in WORKFLOW_BAD])
def test_workflow_bad_subject_recorded_with_its_reason(mixed_run, label, step, file, problem):
    row = _qc(mixed_run.wd)[label]
    assert row["status"] == "failed" and row["failed_step"] == step, row
    assert file.replace(f"sub-{SUB}_", f"sub-{label}_") in row["reason"], row["reason"]
    assert problem in row["reason"], row["reason"]


@pytest.mark.workflow
def test_workflow_invalid_folder_warning_and_summary(mixed_run):
    log = mixed_run.res.log
    folder = mixed_run.root / "sub-0 1"
    assert f"exgsrc: {folder}: invalid subject label '0 1' (must be alphanumeric); skipped" in log
    assert "exgsrc: 1 of 5 subject(s) have results" in log
    for label, _, step, *_ in WORKFLOW_BAD:
        assert f"exgsrc: sub-{label}: failed at {step}: " in log
    assert (
        "exgsrc: after fixing the input, retry what failed: .venv/bin/exgsrc retry results" in log
    )


# ---------------------------------------------------------------------------------------
# a run where every subject fails; the lock; retry after fixing the input


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _lock(out: Path, pid: int, workdir="/elsewhere") -> Path:
    import socket

    out.mkdir(parents=True, exist_ok=True)
    lock = out / ".exgsrc.lock"
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "workdir": workdir}))
    return lock


@pytest.fixture(scope="module")
def all_failed(templates, tmp_path_factory):
    """A subject without positions and ``montage.fallback: null`` (montage fails).

    1. the run where every subject fails;
    2. the positions put back, the same command while a live process holds the output's
       lock (refused at once, after the notice of the recorded failures);
    3. ``exgsrc retry results``, a stale lock of a dead process and a stale temporary
       planted, the same command again.
    """
    from exgsrc.cli import main

    base = tmp_path_factory.mktemp("allfail")
    root = base / "bids"
    shutil.copytree(templates["edf"], root)
    kept = base / "positions"
    kept.mkdir()
    for name in (ELECTRODES, COORDSYSTEM):
        shutil.move(_eeg(root) / name, kept / name)
    wd = base / "wd"
    wd.mkdir()
    out = wd / "results"
    run = SimpleNamespace(root=root, wd=wd, out=out)
    run.first = snakemake(wd, root, montage={"fallback": None})
    run.qc_first = _qc(wd)
    for name in (ELECTRODES, COORDSYSTEM):  # fix the input
        shutil.copy(kept / name, _eeg(root) / name)
    holder = _sleeper()
    try:
        lock = _lock(out, holder.pid)
        run.locked = snakemake(wd, root, montage={"fallback": None})
        run.holder_pid = holder.pid
        run.lock_left = lock.is_file()
    finally:
        holder.kill()
        holder.wait()
    lock.unlink()
    run.retry_exit = main(["retry", str(out)])  # from another directory than the run's
    run.dead_pid = _dead_pid()
    _lock(out, run.dead_pid)
    run.stale = out / f"sub-{SUB}" / "eeg" / f".{BASE}_fwd.nc.12345.tmp"
    run.stale.write_bytes(b"half a file")
    run.second = snakemake(wd, root, montage={"fallback": None})
    run.qc_second = _qc(wd)
    return run


@pytest.mark.workflow
def test_run_where_every_subject_fails_exits_nonzero(all_failed):
    res = all_failed.first
    assert res.returncode != 0, res.log[-3000:]
    assert all_failed.qc_first[SUB]["status"] == "failed"
    assert all_failed.qc_first[SUB]["failed_step"] == "montage"
    assert "no electrodes.tsv and no fallback montage" in all_failed.qc_first[SUB]["reason"]
    assert "no subject succeeded (1 failed; see results/group/qc.tsv)" in res.log
    assert "exgsrc: 0 of 1 subject(s) have results" in res.log


@pytest.mark.workflow
def test_next_run_names_the_recorded_failures_and_the_retry(all_failed):
    """Before anything runs, the failures of earlier runs are named."""
    res = all_failed.locked
    notice = re.search(
        r"exgsrc: (\d+) step\(s\) of earlier runs recorded failures \((.*)\)", res.log
    )
    assert notice and int(notice[1]) >= 1 and "montage" in notice[2].split(", "), res.log[:3000]
    assert "After fixing the input, retry them: .venv/bin/exgsrc retry results" in res.log


@pytest.mark.workflow
def test_retry_reruns_the_failed_steps(all_failed):
    res = all_failed.second
    assert all_failed.retry_exit == 0
    assert res.returncode == 0, res.log[-5000:]
    assert "rule montage:" in res.log  # rerun
    assert all_failed.qc_second[SUB]["status"] == "ok", all_failed.qc_second[SUB]
    assert "exgsrc: 1 of 1 subject(s) have results" in res.log
    assert "retry what failed" not in res.log  # nothing left recorded as failed


@pytest.mark.workflow
def test_lock_of_a_live_run_refuses_a_second_run(all_failed):
    res = all_failed.locked
    assert res.returncode != 0
    assert f"is in use by another exgsrc run (pid {all_failed.holder_pid} on" in res.log
    assert "working directory /elsewhere" in res.log
    assert all_failed.lock_left  # the other run's lock is not touched
    assert "rule montage:" not in res.log  # refused before any job


@pytest.mark.workflow
def test_stale_lock_taken_over_and_temporaries_removed(all_failed):
    res = all_failed.second
    assert (
        f"exgsrc: took over the lock of results left by a run that is gone "
        f"(pid {all_failed.dead_pid})"
    ) in res.log
    assert "removed 1 half-written file(s) of killed jobs" in res.log
    assert not all_failed.stale.exists()
    assert not (all_failed.out / ".exgsrc.lock").exists()  # released at the end


# ---------------------------------------------------------------------------------------
# the lock, stale temporaries and a full disk, in-process


def test_output_lock_live_and_stale(tmp_path):
    from exgsrc.runs import OutputLocked, acquire_output_lock, release_output_lock

    out = tmp_path / "results"
    holder = _sleeper()
    try:
        lock = _lock(out, holder.pid, workdir="/other/run")
        with pytest.raises(OutputLocked) as err:
            acquire_output_lock(out, tmp_path)
        assert f"pid {holder.pid} on" in str(err.value)
        assert "working directory /other/run" in str(err.value)
        assert json.loads(lock.read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    dead = _dead_pid()
    _lock(out, dead)
    note = acquire_output_lock(out, tmp_path)
    assert note == f"took over the lock of {out} left by a run that is gone (pid {dead})"
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert acquire_output_lock(out, tmp_path) is None  # this process holds it already
    release_output_lock(out)
    assert not lock.exists()


def test_retry_from_another_directory(tmp_path, monkeypatch):
    """Snakemake gives a job's outputs relative to its working directory; ``exgsrc retry``
    run from elsewhere still removes them (it removed nothing and dropped the notes)."""
    from exgsrc.runs import record_failure, recorded_failures, retry_failed
    from exgsrc.store import write_failed_outputs

    wd = tmp_path / "wd"
    (wd / "results" / "sub-01").mkdir(parents=True)
    monkeypatch.chdir(wd)
    outputs = ["results/sub-01/x_montage.nc", "results/sub-01/x_report.json"]
    write_failed_outputs(outputs, "BidsError: boom", {})
    record_failure("results/logs/montage/sub-01.log", "montage", outputs, "BidsError: boom")
    monkeypatch.chdir(tmp_path)
    assert [n["rule"] for n in recorded_failures(wd / "results" / "logs")] == ["montage"]
    assert retry_failed(wd / "results") == [str(wd / o) for o in outputs]
    assert not any((wd / o).exists() for o in outputs)
    assert recorded_failures(wd / "results" / "logs") == []


def test_stale_temporaries_removed(tmp_path):
    from exgsrc.runs import remove_stale_temporaries

    sub = tmp_path / "sub-01" / "eeg"
    sub.mkdir(parents=True)
    stale = [sub / ".x_fwd.nc.12345.tmp", tmp_path / ".qc.tsv.7.tmp"]
    keep = [sub / "x_fwd.nc", sub / ".hidden", tmp_path / "notes.tmp"]
    for p in stale + keep:
        p.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(map(str, stale))
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def _tiny_dataset():
    import xarray as xr

    return xr.Dataset({"x": ("i", np.arange(3.0))})


@pytest.fixture
def full_disk(monkeypatch):
    """A file system with no free space: writers fail, disk_usage says 0 bytes free."""
    import xarray as xr

    def no_space(self, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")  # what netCDF says on a full disk

    monkeypatch.setattr(xr.Dataset, "to_netcdf", no_space)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0)
    )


def test_full_disk_is_reported_as_such(tmp_path, full_disk):
    from exgsrc.store import write_netcdf

    with pytest.raises(OSError) as err:
        write_netcdf(_tiny_dataset(), tmp_path / "a.nc", {})
    assert err.value.errno == errno.ENOSPC
    assert str(err.value).startswith(
        f"[Errno {errno.ENOSPC}] no space left on the device of {tmp_path} (0 bytes free) "
        "while writing a.nc: RuntimeError: NetCDF: HDF error"
    )
    assert list(tmp_path.iterdir()) == []  # no temporary left


def test_full_disk_stops_the_step_even_under_on_error_record(templates, tmp_path, full_disk):
    """No failed-status placeholder can be written either: the job fails, saying why."""
    sm = SimpleNamespace(
        input=_Named(),
        output=[str(tmp_path / "montage.nc")],
        params=SimpleNamespace(**_params(templates["edf"])),
        wildcards=_Named(subject=SUB),
        config={"on_error": "record", "precision": "float64"},
        rule="montage",
        log=[str(tmp_path / "montage.log")],
    )
    with pytest.raises(OSError, match="no space left on the device"):
        run_step(sm, step_montage)
    assert not (tmp_path / "montage.nc").exists()


def test_enospc_from_the_writer_is_reported_with_free_space(tmp_path, monkeypatch):
    """ENOSPC raised by the writer itself is a full disk whatever disk_usage says; other
    errors with free space pass unchanged."""
    import xarray as xr

    from exgsrc.store import write_netcdf

    def enospc(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", enospc)
    with pytest.raises(OSError, match="no space left on the device of .* while writing b.nc"):
        write_netcdf(_tiny_dataset(), tmp_path / "b.nc", {})

    def other(self, *args, **kwargs):
        raise RuntimeError("NetCDF: Invalid argument")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", other)
    with pytest.raises(RuntimeError, match="^NetCDF: Invalid argument$"):
        write_netcdf(_tiny_dataset(), tmp_path / "c.nc", {})


# ---------------------------------------------------------------------------------------
# condition labels of awkward trial_type text, at DAG time


def test_awkward_trial_types_give_a_working_dry_run(templates, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(templates["edf"], root)
    relabel_trials(QUOTED)(root)
    edit_tsv(
        EVENTS, lambda rows: [r[:2] + [CHINESE if r[2] == "b" else r[2]] + r[3:] for r in rows]
    )(root)
    wd = tmp_path / "wd"
    wd.mkdir()
    res = snakemake(wd, root, "-n", conditions="all")
    assert res.returncode == 0, res.log[-3000:]
    assert "File name too long" not in res.log
    labels = set(re.findall(r"_cond-([A-Za-z0-9]+)_desc-sLORETA_stc\.nc", res.log))
    assert labels == {condition_label(QUOTED), condition_label(CHINESE)}
    assert all(len(lab) <= MAX_LABEL_LENGTH for lab in labels), labels
    assert condition_label(QUOTED) == "X22quoted"
    assert "XZ" in condition_label(CHINESE)  # 252 characters encoded: shortened with a hash
