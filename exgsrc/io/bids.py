"""BIDS-EEG datasets: reading the data, events and electrode positions of a recording.

Recordings and their sidecars are found by :mod:`exgsrc.io.discovery`
(:func:`discover` is re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..annotations import DISCONTINUITIES, Annotations, is_bad_segment
from ..containers import Raw
from ._errors import BidsError
from ._tsv import read_json, read_tsv, tsv_float
from .checks import find_bad_channels
from .discovery import BidsRecording, discover, validate_label
from .events import condition_event_rows, resolve_conditions
from .montage import Montage, read_electrodes, standard_montage
from .units import volt_scale

__all__ = [
    "BidsRecording",
    "Events",
    "condition_rows",
    "discover",
    "read_recording",
    "read_events",
    "read_montage",
    "read_bad_segments",
    "select_conditions",
    "validate_label",
]

_CH_TYPES = {
    "EEG": "eeg",
    "EOG": "eog",
    "HEOG": "eog",
    "VEOG": "eog",
    "ECG": "ecg",
    "EMG": "emg",
    "MISC": "misc",
    "TRIG": "stim",
    "STIM": "stim",
    "REF": "eeg",
    "RESP": "resp",
    "GSR": "gsr",
    "TEMP": "temp",
    "PPG": "misc",
    "SYSCLOCK": "misc",
    "AUDIO": "misc",
}


# ----------------------------------------------------------------------------------
# reading a recording
# ----------------------------------------------------------------------------------


def _read_data_file(
    rec: BidsRecording, units, expected_sfreq=None, on_nonfinite: str = "raise"
) -> Raw:
    fmt = rec.format
    if fmt == "EEGLAB":
        from .eeglab import read_eeglab

        return read_eeglab(
            rec.data_path, units=units if units is not None else "uV", on_nonfinite=on_nonfinite
        )
    if fmt in ("EDF", "BDF"):
        from .edf import read_edf

        return read_edf(
            rec.data_path,
            expected_sfreq=expected_sfreq,
            expected_from=f"{rec.eeg_json_path}: SamplingFrequency",
            on_nonfinite=on_nonfinite,
        )
    if fmt == "BrainVision":
        from .brainvision import read_brainvision

        return read_brainvision(rec.data_path, on_nonfinite=on_nonfinite)
    raise BidsError(f"{rec.data_path}: unsupported format {fmt}")


def _json_sfreq(rec: BidsRecording) -> float | None:
    """``SamplingFrequency`` of the recording's ``eeg.json`` (None if absent)."""
    if rec.eeg_json_path is None:
        return None
    sf = read_json(rec.eeg_json_path).get("SamplingFrequency")
    if sf is None:
        return None
    try:
        return float(sf)
    except (TypeError, ValueError):
        raise BidsError(f"{rec.eeg_json_path}: SamplingFrequency {sf!r} is not a number") from None


def read_recording(rec: BidsRecording, on_nonfinite: str = "raise") -> Raw:
    """Read a recording into a :class:`Raw` (volts) with types and bads from ``channels.tsv``.

    Parameters
    ----------
    rec : BidsRecording
    on_nonfinite : {"raise", "annotate"}
        NaN/Inf samples in the data file: an error naming file, channel and time,
        or ``"BAD_nonfinite"`` bad segments (see :func:`exgsrc.io.checks.check_finite`).

    Returns
    -------
    Raw
        ``ch_types`` from ``channels.tsv`` (lower-case, EOG/ECG/... kept), ``bads``
        from ``status == bad``; ``meta`` holds ``source``, ``recording`` (basename),
        ``channels_tsv``, ``eeg_json`` contents, ``suspect_channels`` (list of
        (channel, reason): flat channels of any type, implausible amplitude of
        EEG/EOG/ECG/EMG channels; reported, not marked bad), ``warnings`` (list of
        str naming the files). ``annotations``: the data file's annotations plus
        the bad segments and boundaries of ``events.tsv``
        (:func:`read_bad_segments`; duplicates within half a sample dropped).

    Raises
    ------
    BidsError
        Missing data file, malformed sidecars, channel mismatch between
        ``channels.tsv`` and the data, unknown units, duplicate channel names,
        an EDF/BDF header whose sampling rate differs from ``eeg.json``'s
        ``SamplingFrequency``, non-finite samples (``on_nonfinite="raise"``).
    """
    warnings: list[str] = list(rec.warnings)
    if not rec.data_path.is_file():
        raise BidsError(f"{rec.data_path}: data file not found")
    ch_cols = None
    if rec.channels_path is not None:
        ch_cols = read_tsv(rec.channels_path, required=("name", "type", "units"))
        names = ch_cols["name"]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise BidsError(f"{rec.channels_path}: duplicate channel names {dup}")
    else:
        warnings.append(f"{rec.data_path}: no channels.tsv found; all channels taken as EEG")

    units = None
    if rec.format == "EEGLAB" and ch_cols is not None:
        # EEGLAB files carry no unit: channels.tsv is the authority
        tsv_units = dict(zip(ch_cols["name"], ch_cols["units"], strict=True))
        tsv_types = dict(zip(ch_cols["name"], ch_cols["type"], strict=True))
        units = {}
        for lab, u in tsv_units.items():
            if volt_scale(u) is None:
                typ = tsv_types.get(lab, "EEG").upper()
                is_volt_type = typ in ("EEG", "EOG", "ECG", "EMG", "REF")
                if is_volt_type and u not in ("n/a", ""):
                    raise BidsError(
                        f"{rec.channels_path}: unknown unit {u!r} for channel {lab} (type {typ})"
                    )
                if is_volt_type:
                    warnings.append(f"{rec.channels_path}: no unit for {lab}; assuming µV")
                    u = "uV"
                else:
                    u = "V"  # non-voltage channel: keep the stored numbers
            units[lab] = u
    expected_sfreq = _json_sfreq(rec) if rec.format in ("EDF", "BDF") else None
    raw = _read_data_file(rec, units, expected_sfreq, on_nonfinite)
    warnings.extend(raw.meta.get("warnings", []))

    eeg_json = {}
    if rec.eeg_json_path is not None:
        eeg_json = read_json(rec.eeg_json_path)
        sf = eeg_json.get("SamplingFrequency")
        if sf is not None:
            try:
                sf = float(sf)
            except (TypeError, ValueError):
                raise BidsError(
                    f"{rec.eeg_json_path}: SamplingFrequency {sf!r} is not a number"
                ) from None
            if abs(sf - raw.sfreq) > 1e-6 * raw.sfreq:
                warnings.append(
                    f"{rec.eeg_json_path}: SamplingFrequency {sf} Hz differs from the data file's "
                    f"{raw.sfreq} Hz (data file used)"
                )
    else:
        warnings.append(f"{rec.data_path}: no *_eeg.json sidecar found")

    ch_types = list(raw.ch_types)
    bads: list[str] = []
    status_desc = {}
    rescaled: list[str] = []
    if ch_cols is not None:
        tsv_names = ch_cols["name"]
        data_names = list(raw.ch_names)
        not_in_data = [n for n in tsv_names if n not in data_names]
        not_in_tsv = [n for n in data_names if n not in tsv_names]
        if not_in_data or not_in_tsv:
            raise BidsError(
                f"{rec.channels_path}: channels do not match {rec.data_path.name}: "
                f"only in channels.tsv {not_in_data}, only in data {not_in_tsv}"
            )
        lut = {n: i for i, n in enumerate(tsv_names)}
        for j, n in enumerate(data_names):
            i = lut[n]
            t = ch_cols["type"][i].strip().upper()
            if t not in _CH_TYPES:
                warnings.append(f"{rec.channels_path}: unknown type {t!r} for {n}; taken as misc")
            ch_types[j] = _CH_TYPES.get(t, "misc")
            if "status" in ch_cols:
                st = ch_cols["status"][i].strip().lower()
                if st == "bad":
                    bads.append(n)
                    if "status_description" in ch_cols:
                        status_desc[n] = ch_cols["status_description"][i]
                elif st not in ("good", "n/a", ""):
                    warnings.append(f"{rec.channels_path}: status {st!r} for {n} is not good/bad")
            # unit consistency (file formats that declare units)
            if rec.format != "EEGLAB":
                u_tsv = ch_cols["units"][i]
                u_file = raw.meta.get("file_units", {}).get(n)
                s_tsv, s_file = volt_scale(u_tsv), volt_scale(u_file or "")
                if ch_types[j] in ("eeg", "eog", "ecg", "emg") and u_file is not None:
                    if s_file is None and s_tsv is not None:
                        # the reader kept the stored numbers; channels.tsv gives the unit
                        raw.data[j] *= s_tsv
                        rescaled.append(n)
                        warnings.append(
                            f"{rec.data_path}: unit {u_file!r} of channel {n} is not a voltage; "
                            f"using {u_tsv!r} from {rec.channels_path.name}"
                        )
                        continue
                    if s_file is None:
                        raise BidsError(
                            f"{rec.data_path}: unknown unit {u_file!r} for {ch_types[j].upper()} "
                            f"channel {n} (expected V, mV, µV, nV), and channels.tsv gives "
                            f"{u_tsv!r}"
                        )
                if s_tsv is None and u_tsv not in ("n/a", "") and s_file is not None:
                    warnings.append(
                        f"{rec.channels_path}: unknown unit {u_tsv!r} for {n}; the data "
                        f"file's {u_file!r} is used"
                    )
                if (
                    s_tsv is not None
                    and s_file is not None
                    and abs(s_tsv - s_file) > 1e-12 * s_tsv
                ):
                    warnings.append(
                        f"{rec.channels_path}: unit {u_tsv!r} for {n} differs from the data "
                        f"file's {u_file!r} (data file's unit used)"
                    )
    annotations = _merge_bad_segments(rec, raw, warnings)
    suspects = list(raw.meta.get("suspect_channels", []))
    if rescaled:
        # the reader judged these channels' amplitudes in their stored numbers: judge again
        stale = [(ch, why) for ch, why in suspects if ch in rescaled]
        stale_msgs = {f"{raw.meta.get('source')}: channel {ch} is {why}" for ch, why in stale}
        warnings[:] = [w for w in warnings if w not in stale_msgs]
        rows = [raw.ch_names.index(ch) for ch in rescaled]
        again = find_bad_channels(raw.data[rows], rescaled)
        warnings.extend(f"{rec.data_path}: channel {ch} is {why}" for ch, why in again)
        suspects = [(ch, why) for ch, why in suspects if ch not in rescaled] + again
    suspects = [
        (ch, why)
        for ch, why in suspects
        if why.startswith("flat") or ch_types[raw.ch_names.index(ch)] in _VOLTAGE_TYPES
    ]
    meta = dict(raw.meta)
    meta.update(
        {
            "suspect_channels": suspects,
            "recording": rec.basename,
            "subject": rec.subject,
            "session": rec.session,
            "task": rec.task,
            "run": rec.run,
            "channels_tsv": str(rec.channels_path) if rec.channels_path else None,
            "eeg_json": eeg_json,
            "status_description": status_desc,
            "warnings": warnings,
        }
    )
    return Raw(
        raw.data,
        raw.sfreq,
        raw.ch_names,
        tuple(ch_types),
        tuple(bads),
        raw.first_time,
        meta,
        annotations=annotations,
    )


_VOLTAGE_TYPES = ("eeg", "eog", "ecg", "emg")


def _is_segment_marker(trial_types) -> np.ndarray:
    """Rows that mark bad segments or discontinuities (BAD..., boundary, EDGE..., New Segment)."""
    return is_bad_segment(trial_types, DISCONTINUITIES)


def read_bad_segments(rec: BidsRecording | str | Path) -> Annotations:
    """Bad segments and boundaries listed in ``events.tsv``.

    Rows whose ``trial_type`` starts with ``BAD`` or ``EDGE`` (case-insensitive),
    is ``boundary`` or starts with ``New Segment`` (as MNE-BIDS writes MNE's
    annotations) are segments, never conditions (:func:`read_events` leaves them
    out).

    Parameters
    ----------
    rec : BidsRecording | path-like
        A recording (its ``events_path``) or an ``events.tsv`` path.

    Returns
    -------
    Annotations
        Onset (s from the first sample) and duration (s; ``n/a`` -> 0, as
        MNE-BIDS reads it) of each such row, description = ``trial_type``; empty
        without ``events.tsv`` or ``trial_type`` column.

    Raises
    ------
    BidsError
        Malformed ``events.tsv`` or a non-numeric onset/duration on such a row.
    """
    path = rec.events_path if isinstance(rec, BidsRecording) else Path(rec)
    if path is None:
        return Annotations()
    cols = read_tsv(path, required=("onset",))
    if "trial_type" not in cols:
        return Annotations()
    tt = cols["trial_type"]
    rows = np.flatnonzero(_is_segment_marker(tt))
    onset = [tsv_float(cols["onset"][i], path, "onset", i + 2) for i in rows]
    if "duration" in cols:
        dur = [tsv_float(cols["duration"][i], path, "duration", i + 2) for i in rows]
    else:
        dur = [0.0] * rows.size
    dur = np.nan_to_num(np.asarray(dur, dtype=float), nan=0.0)
    ok = np.isfinite(np.asarray(onset, dtype=float))
    return Annotations(np.asarray(onset, dtype=float)[ok], dur[ok], tuple(tt[i] for i in rows[ok]))


def _merge_bad_segments(rec: BidsRecording, raw: Raw, warnings: list[str]) -> Annotations:
    """events.tsv segments + the data file's annotations (duplicates within half a sample)."""
    from_tsv = read_bad_segments(rec)
    tol = 0.5 / raw.sfreq
    if rec.events_path is not None:
        # bad segments only the data file has (MNE's exporter's padding excepted)
        file_bad = raw.annotations.select(("bad",))
        keep = np.array([d != "BAD_ACQ_SKIP" for d in file_bad.description], dtype=bool)
        file_bad = Annotations(
            file_bad.onset[keep],
            file_bad.duration[keep],
            tuple(d for d, k in zip(file_bad.description, keep, strict=True) if k),
        )
        n_extra = len(from_tsv.merge(file_bad, tol)) - len(from_tsv)
        if n_extra:
            warnings.append(
                f"{rec.data_path}: {n_extra} bad segment(s) of the data file are not in "
                f"{rec.events_path.name}; they reject epochs too"
            )
    return from_tsv.merge(raw.annotations, tol)


# ----------------------------------------------------------------------------------
# events
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Events:
    """Events of a recording (from ``events.tsv``).

    Parameters
    ----------
    onset : ndarray, shape (n_events,)
        Seconds from the first data sample.
    duration : ndarray, shape (n_events,)
        Seconds (NaN for ``n/a``).
    trial_type : tuple of str
        Condition code of each event: its value in the column read
        (``meta["column"]``, ``trial_type`` by default).
    sample : ndarray of int, shape (n_events,)
        ``round(onset * sfreq)``: index into the data (0 = first sample).
    sfreq : float
    meta : dict
        ``source`` (file), ``warnings``, ``column`` (read), ``renamed`` (mapping applied).
    columns : dict of str -> tuple of str
        Every column of ``events.tsv`` for these events (empty for events from a
        data file).
    """

    onset: np.ndarray
    duration: np.ndarray
    trial_type: tuple[str, ...]
    sample: np.ndarray
    sfreq: float
    meta: dict = field(default_factory=dict, compare=False)
    columns: dict = field(default_factory=dict, compare=False)

    @property
    def conditions(self) -> tuple[str, ...]:
        """Distinct trial types, in first-seen order."""
        return tuple(dict.fromkeys(self.trial_type))

    def __len__(self) -> int:
        return len(self.trial_type)

    def select(self, conditions=None) -> Events:
        """Select and rename conditions (see :func:`select_conditions`).

        Parameters
        ----------
        conditions : None | sequence of str | dict of str -> str
            As in :func:`select_conditions`.

        Returns
        -------
        Events
        """
        return select_conditions(self, conditions)


def read_events(
    rec: BidsRecording | str | Path, sfreq: float | None = None, column: str | None = None
) -> Events:
    """Read ``events.tsv`` of a recording.

    Parameters
    ----------
    rec : BidsRecording | path-like
        A recording (its ``events_path`` and sampling rate) or an ``events.tsv`` path.
    sfreq : float | None
        Sampling frequency (Hz); default from the recording's ``*_eeg.json``
        ``SamplingFrequency`` or its data file.
    column : str | None
        The column holding each event's condition code (``trial_type``, ``value``
        or any column of the file); a file without it raises. None: ``trial_type``,
        or ``value`` (with a recorded warning) when the file has no ``trial_type``.

    Returns
    -------
    Events
        ``trial_type`` holds the codes of ``column``; rows whose code is ``n/a`` or
        empty are dropped (recorded warning), and so are rows that mark bad segments
        or boundaries (:func:`exgsrc.io.events.condition_event_rows`).
        ``columns`` holds every column of the file for the rows kept;
        ``meta["column"]`` the column read. Without an ``events.tsv``, the data
        file's own events (EEGLAB events, BrainVision markers, EDF+ annotations)
        are used, with a recorded warning.

    Raises
    ------
    BidsError
        Missing or malformed file, missing ``onset``, non-numeric onsets, no
        ``column`` (or, for None, neither ``trial_type`` nor ``value``).
    """
    warnings: list[str] = []
    if isinstance(rec, BidsRecording):
        path = rec.events_path
        if path is None:
            return _events_from_data_file(rec)
        if sfreq is None:
            sfreq = _recording_sfreq(rec)
    else:
        path = Path(rec)
        if sfreq is None:
            raise BidsError(f"{path}: sfreq must be given when reading events.tsv directly")
    cols = read_tsv(path, required=("onset",))
    n = len(cols["onset"])
    onset = np.array([tsv_float(v, path, "onset", i + 2) for i, v in enumerate(cols["onset"])])
    if np.any(~np.isfinite(onset)):
        bad = [int(i) + 2 for i in np.flatnonzero(~np.isfinite(onset))]
        raise BidsError(f"{path}: onset is n/a on lines {bad}")
    if "duration" in cols:
        dur = np.array(
            [tsv_float(v, path, "duration", i + 2) for i, v in enumerate(cols["duration"])]
        )
    else:
        warnings.append(f"{path}: required column 'duration' missing")
        dur = np.full(n, np.nan)
    column = _events_column(cols, column, path, warnings)
    tt = cols[column]
    keep = np.array([t not in ("n/a", "") for t in tt], dtype=bool)
    if not keep.all():
        warnings.append(f"{path}: {int((~keep).sum())} events with {column} n/a ignored")
    segments = keep & ~np.array(condition_event_rows(cols, column), dtype=bool)
    if segments.any():
        keep &= ~segments
        marks = cols.get("trial_type", tt)
        warnings.append(
            f"{path}: {int(segments.sum())} rows mark bad segments or boundaries "
            f"({sorted(set(t for t, m in zip(marks, segments, strict=True) if m))}); "
            "not conditions (see read_bad_segments)"
        )
    onset, dur = onset[keep], dur[keep]
    rows = np.flatnonzero(keep)
    sample = np.round(onset * float(sfreq)).astype(np.int64)
    return Events(
        onset,
        dur,
        tuple(tt[i] for i in rows),
        sample,
        float(sfreq),
        {"source": str(path), "warnings": warnings, "column": column},
        columns={k: tuple(v[i] for i in rows) for k, v in cols.items()},
    )


def _events_column(cols: dict, column: str | None, path, warnings: list[str]) -> str:
    """The column read for the condition codes (see :func:`read_events`)."""
    if column is not None:
        if column not in cols:
            raise BidsError(
                f"{path}: no column {column!r} for the condition codes (columns: {list(cols)})"
            )
        return column
    if "trial_type" in cols:
        return "trial_type"
    if "value" in cols:
        warnings.append(f"{path}: no trial_type column; conditions taken from 'value'")
        return "value"
    raise BidsError(f"{path}: neither 'trial_type' nor 'value' column; cannot define conditions")


def condition_rows(events: Events, conditions="all", column: str | None = None) -> dict:
    """Rows of ``events`` that make each condition.

    Parameters
    ----------
    events : Events
    conditions : "all" | None | sequence | mapping
        A conditions spec (:mod:`exgsrc.io.events`): ``"all"`` (every distinct code
        its own condition), a list of keys (one condition per key, MNE's ``/``-tag
        rule: ``auditory`` takes ``auditory/left`` and ``auditory/right``), or
        ``{name: [keys...]}`` merging several codes into one condition.
    column : str | None
        The events column whose codes are matched; None: the one ``events`` was
        read with (``events.trial_type``). Another column is taken from
        ``events.columns`` (rows read with an ``n/a`` code are not there).

    Returns
    -------
    dict of str -> ndarray of int
        Condition name -> row indices (ascending) into ``events``; a condition no
        event matches has an empty array. A row may belong to several conditions.

    Raises
    ------
    ValueError
        A malformed spec, or ``column`` not in ``events.columns``.
    """
    if column is None or column == events.meta.get("column", "trial_type"):
        codes = events.trial_type
    elif column in events.columns:
        codes = events.columns[column]
    else:
        raise ValueError(
            f"{events.meta.get('source', 'events')}: no column {column!r} "
            f"(columns: {list(events.columns)})"
        )
    found = [c for c in dict.fromkeys(codes) if c not in ("n/a", "")]
    resolved = resolve_conditions(found, conditions)
    return {
        name: np.flatnonzero([c in set(cs) for c in codes]).astype(np.int64)
        for name, cs in resolved.items()
    }


def _events_from_data_file(rec: BidsRecording) -> Events:
    """Fallback when ``events.tsv`` is missing: the data file's own events/markers."""
    raw = _read_data_file(rec, None)
    meta = raw.meta
    items: list[tuple[float, float, str]] = []
    if meta.get("events"):  # EEGLAB: (type, sample)
        items = [(s / raw.sfreq, 0.0, str(t)) for t, s in meta["events"]]
    elif meta.get("markers"):  # BrainVision: (type, description, sample, duration)
        items = [
            (s / raw.sfreq, d / raw.sfreq, desc or typ)
            for typ, desc, s, d in meta["markers"]
            if typ.lower() != "new segment" and not typ.lower().startswith("bad")
        ]
    elif meta.get("annotations"):  # EDF+: (onset, duration, text)
        items = [(o, d if d is not None else 0.0, t) for o, d, t in meta["annotations"] if t]
    items = [
        it
        for it, seg in zip(items, _is_segment_marker([i[2] for i in items]), strict=True)
        if not seg
    ]
    if not items:
        raise BidsError(
            f"{rec.data_path}: no events.tsv found for {rec.basename} and no events in the data file"
        )
    onset = np.array([i[0] for i in items], dtype=float)
    dur = np.array([i[1] for i in items], dtype=float)
    tt = tuple(i[2] for i in items)
    sample = np.round(onset * raw.sfreq).astype(np.int64)
    msg = f"{rec.data_path}: no events.tsv; {len(tt)} events taken from the data file"
    return Events(
        onset, dur, tt, sample, raw.sfreq, {"source": str(rec.data_path), "warnings": [msg]}
    )


def _recording_sfreq(rec: BidsRecording) -> float:
    if rec.eeg_json_path is not None:
        sf = read_json(rec.eeg_json_path).get("SamplingFrequency")
        try:
            if sf is not None and float(sf) > 0:
                return float(sf)
        except (TypeError, ValueError):
            pass
    return read_recording(rec).sfreq


def select_conditions(events: Events, conditions=None) -> Events:
    """Select and rename conditions.

    Parameters
    ----------
    events : Events
    conditions : None | sequence of str | dict of str -> str
        None: every trial type found. A list keeps those trial types. A dict maps
        trial types found in the file to the condition names to use (several may
        map to one name).

    Returns
    -------
    Events
        Only the selected events, renamed. Requested trial types absent from the
        file are recorded in ``meta["warnings"]`` and ``meta["absent"]``.
    """
    if conditions is None:
        return events
    if isinstance(conditions, str):
        conditions = [conditions]
    mapping = dict(conditions) if isinstance(conditions, dict) else {c: c for c in conditions}
    present = set(events.trial_type)
    absent = [c for c in mapping if c not in present]
    warnings = list(events.meta.get("warnings", []))
    src = events.meta.get("source", "events")
    if absent:
        warnings.append(f"{src}: conditions {absent} absent (found {sorted(present)})")
    keep = np.array([t in mapping for t in events.trial_type], dtype=bool)
    tt = tuple(str(mapping[t]) for t, k in zip(events.trial_type, keep, strict=True) if k)
    meta = dict(events.meta)
    meta.update({"warnings": warnings, "absent": absent, "renamed": mapping})
    rows = np.flatnonzero(keep)
    columns = {k: tuple(v[i] for i in rows) for k, v in events.columns.items()}
    return Events(
        events.onset[keep],
        events.duration[keep],
        tt,
        events.sample[keep],
        events.sfreq,
        meta,
        columns=columns,
    )


# ----------------------------------------------------------------------------------
# montage
# ----------------------------------------------------------------------------------


def read_montage(
    rec: BidsRecording,
    ch_names=None,
    fallback: str | None = "standard_1005",
    radius: float = 0.095,
    fix_units: bool = False,
) -> Montage:
    """Electrode positions of a recording, in the RAS head frame.

    Parameters
    ----------
    rec : BidsRecording
    ch_names : sequence of str | None
        Channels that need positions (e.g. the good EEG channels); those without one
        are named in ``meta["missing"]`` and in a warning.
    fallback : str | None
        Standard montage used when the recording has no ``electrodes.tsv`` and
        (EEGLAB) its ``.set`` file holds no channel positions (recorded as a
        warning); None: raise instead.
    radius : float
        Sphere radius (m) of the fallback montage and of unit-sphere ``.set``
        positions.
    fix_units : bool
        See :func:`exgsrc.io.montage.read_electrodes`.

    Returns
    -------
    Montage
        Positions in metres in the RAS head frame (x right, y anterior, z up):
        from ``electrodes.tsv`` converted from its ``coordsystem.json`` frame
        (:func:`exgsrc.io.montage.read_electrodes`); without it, from the
        ``.set`` file of an EEGLAB recording
        (:func:`exgsrc.io.eeglab.read_eeglab_montage`, with a recorded note);
        else the ``fallback``. ``coord_frame`` and ``meta`` say how (see
        :class:`exgsrc.io.montage.Montage`). When ``ch_names`` is given,
        restricted to those with a position, in that order and spelling
        (matching is case-insensitive).
    """
    warnings: list[str] = []
    mont = None
    if rec.electrodes_path is not None:
        if rec.coordsystem_path is None:
            warnings.append(f"{rec.electrodes_path}: no coordsystem.json found")
        mont = read_electrodes(rec.electrodes_path, rec.coordsystem_path, fix_units=fix_units)
    elif rec.format == "EEGLAB":
        from .eeglab import read_eeglab_montage

        try:
            mont = read_eeglab_montage(rec.data_path, radius)
        except BidsError as err:
            warnings.append(f"{err}; positions of the .set file not used")
    if mont is None:
        if fallback is None:
            raise BidsError(f"{rec.data_path}: no electrodes.tsv and no fallback montage")
        warnings.append(
            f"{rec.data_path}: no electrodes.tsv; using positions of {fallback} on a "
            f"{radius * 1000:.0f} mm sphere"
        )
        mont = standard_montage(fallback, None, radius)
    warnings = list(mont.meta.get("warnings", [])) + warnings
    if ch_names is None:
        meta = dict(mont.meta)
        meta["warnings"] = warnings
        return Montage(mont.ch_names, mont.pos, mont.coord_frame, meta)
    lut = {n.lower(): i for i, n in enumerate(mont.ch_names)}
    names, pos, missing = [], [], []
    for n in ch_names:
        i = lut.get(n.lower())
        if i is None:
            missing.append(n)
        else:
            names.append(n)
            pos.append(mont.pos[i])
    if missing:
        warnings.append(f"{mont.meta.get('source')}: no position for channels {missing}")
    meta = dict(mont.meta)
    meta.update({"missing": missing, "warnings": warnings})
    return Montage(tuple(names), np.asarray(pos).reshape(-1, 3), mont.coord_frame, meta)
