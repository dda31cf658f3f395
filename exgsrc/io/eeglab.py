"""EEGLAB ``.set`` reader (continuous data; MATLAB v5 via scipy, v7.3/HDF5 via h5py).

The data live either inside the ``.set`` (``EEG.data`` numeric) or in a ``.fdt``
file next to it (``EEG.data`` is then its file name): float32 little-endian,
channels varying fastest (``n_times x n_channels`` in C order). EEGLAB stores
no unit; EEG in EEGLAB is in microvolts by convention, so the default scale to
volts is 1e-6 (overridable from ``channels.tsv`` units).

Events become ``Raw.annotations`` as MNE-Python reads them (onset
``(latency - 1) / srate``, duration ``duration / srate``, NaN when empty,
description = event type); ``boundary`` events (discontinuities left where
EEGLAB removed data) keep their name (see :mod:`exgsrc.annotations`).
A ``.fdt`` whose size differs from ``nbchan x pnts x 4`` bytes is an error.

Channel positions (``chanlocs`` X/Y/Z, EEGLAB's frame: x anterior, y left, z
up, no unit) become a :class:`~exgsrc.io.montage.Montage` in the RAS head frame
through :func:`read_eeglab_montage`; :func:`exgsrc.io.bids.read_montage` uses
them when a recording has no ``electrodes.tsv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..annotations import Annotations
from ..containers import Raw
from ._errors import BidsError
from .checks import check_data_size, check_finite, find_bad_channels
from .coords import to_ras_head
from .montage import _PLAUSIBLE, Montage, fit_sphere_radius
from .units import length_scale, unit_scale

__all__ = ["read_eeglab", "read_eeglab_struct", "read_eeglab_montage"]

_TYPE_MAP = {
    "eeg": "eeg",
    "eog": "eog",
    "ecg": "ecg",
    "ekg": "ecg",
    "emg": "emg",
    "misc": "misc",
    "trigger": "stim",
    "stim": "stim",
}


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fid:
        head = fid.read(128)
    return b"MATLAB 7.3" in head or head[:8] == b"\x89HDF\r\n\x1a\n"


def read_eeglab_struct(path: str | Path) -> dict:
    """Read the EEG structure of a ``.set`` file into a plain dict.

    Parameters
    ----------
    path : path-like
        ``.set`` file (MATLAB v5/v7 or v7.3/HDF5).

    Returns
    -------
    dict
        Keys ``nbchan``, ``pnts``, ``trials``, ``srate``, ``xmin``, ``data``
        (ndarray or file name str), ``labels`` (list of str), ``types`` (list of str),
        ``xyz`` (n_ch, 3) EEGLAB X/Y/Z or NaN, ``events`` (list of (type, latency)),
        ``event_durations`` (list of float, samples; NaN when empty, 0 when the
        event structure has no ``duration`` field).
    """
    path = Path(path)
    if not path.is_file():
        raise BidsError(f"{path}: EEGLAB file not found")
    try:
        if _is_hdf5(path):
            return _read_struct_h5(path)
        return _read_struct_v5(path)
    except BidsError:
        raise
    except Exception as err:  # corrupt or truncated MAT file
        raise BidsError(
            f"{path}: cannot read EEGLAB .set file ({type(err).__name__}: {err})"
        ) from None


def _scalar(x, name, path):
    try:
        return float(np.asarray(x).ravel()[0])
    except (IndexError, TypeError, ValueError):
        raise BidsError(f"{path}: EEGLAB field {name!r} is missing or not a number") from None


def _as_list(x):
    if x is None:
        return []
    arr = np.asarray(x, dtype=object)
    return list(arr.ravel()) if arr.ndim else [arr.item()]


def _str(x) -> str:
    if isinstance(x, str):
        return x
    arr = np.asarray(x)
    if arr.size == 0:
        return ""
    if arr.dtype.kind in "US":
        return str(arr.ravel()[0])
    return str(x)


def _read_struct_v5(path: Path) -> dict:
    from scipy.io import loadmat

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False, mat_dtype=False)
    if "EEG" in mat:
        eeg = mat["EEG"]
        get = lambda k, d=None: getattr(eeg, k, d)  # noqa: E731
    else:
        get = lambda k, d=None: mat.get(k, d)  # noqa: E731
    for key in ("nbchan", "pnts", "srate", "data"):
        if get(key) is None:
            raise BidsError(f"{path}: not an EEGLAB file (field {key!r} missing)")
    labels, types, xyz = [], [], []
    for ch in _as_list(get("chanlocs")):
        labels.append(_str(getattr(ch, "labels", "")))
        types.append(_str(getattr(ch, "type", "")))
        xyz.append([_num(getattr(ch, k, np.nan)) for k in ("X", "Y", "Z")])
    events, durations = [], []
    for ev in _as_list(get("event")):
        events.append((_str(getattr(ev, "type", "")), _num(getattr(ev, "latency", np.nan))))
        durations.append(_num(getattr(ev, "duration", 0.0)))
    data = get("data")
    if isinstance(data, str):
        data_out = data
    else:
        data_out = np.asarray(data)
    return dict(
        nbchan=int(_scalar(get("nbchan"), "nbchan", path)),
        pnts=int(_scalar(get("pnts"), "pnts", path)),
        trials=int(_scalar(get("trials", 1), "trials", path)),
        srate=_scalar(get("srate"), "srate", path),
        xmin=_scalar(get("xmin", 0.0), "xmin", path),
        data=data_out,
        labels=labels,
        types=types,
        xyz=np.asarray(xyz, dtype=float).reshape(-1, 3),
        events=events,
        event_durations=durations,
    )


def _num(x) -> float:
    try:
        arr = np.asarray(x, dtype=float).ravel()
        return float(arr[0]) if arr.size else np.nan
    except (TypeError, ValueError):
        return np.nan


def _h5_str(f, obj) -> str:
    arr = np.asarray(obj)
    if arr.dtype.kind in "ui":
        return "".join(chr(int(c)) for c in arr.ravel() if c)
    if arr.dtype.kind in "US":
        return str(arr.ravel()[0]) if arr.size else ""
    if arr.dtype == object:  # references
        return _h5_str(f, f[arr.ravel()[0]][()])
    return ""


def _h5_field_list(f, group, name) -> list:
    """Values of a struct-array field (MATLAB stores an array of references)."""
    if group is None or name not in group:
        return []
    ds = group[name]
    vals = ds[()]
    if getattr(vals, "dtype", None) is not None and vals.dtype == object:
        return [f[r][()] for r in np.asarray(vals).ravel()]
    return [vals]


def _read_struct_h5(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        root = f["EEG"] if "EEG" in f else f
        for key in ("nbchan", "pnts", "srate", "data"):
            if key not in root:
                raise BidsError(f"{path}: not an EEGLAB v7.3 file (field {key!r} missing)")

        def num(k, d=None):
            if k not in root:
                return d
            return float(np.asarray(root[k][()]).ravel()[0])

        dset = root["data"]
        if dset.dtype.kind in "ui" and dset.attrs.get("MATLAB_class", b"") == b"char":
            data = _h5_str(f, dset[()])
        else:
            data = np.asarray(dset[()]).T  # HDF5 stores MATLAB arrays transposed
        labels, types, xyz = [], [], []
        chl = root.get("chanlocs")
        if chl is not None and isinstance(chl, h5py.Group):
            lab = _h5_field_list(f, chl, "labels")
            labels = [_h5_str(f, v) for v in lab]
            types = [_h5_str(f, v) for v in _h5_field_list(f, chl, "type")] or [""] * len(labels)
            cols = []
            for k in ("X", "Y", "Z"):
                v = _h5_field_list(f, chl, k)
                cols.append([_num(x) if np.asarray(x).dtype.kind == "f" else np.nan for x in v])
            if all(len(c) == len(labels) for c in cols):
                xyz = list(zip(*cols, strict=True))
            else:
                xyz = [[np.nan] * 3] * len(labels)
        events, durations = [], []
        evg = root.get("event")
        if evg is not None and isinstance(evg, h5py.Group):
            typ = _h5_field_list(f, evg, "type")
            lat = _h5_field_list(f, evg, "latency")
            dur = _h5_field_list(f, evg, "duration")
            durations = [_num(d) for d in dur] if len(dur) == len(typ) else [0.0] * len(typ)
            for t, la in zip(typ, lat, strict=False):
                tt = (
                    _h5_str(f, t)
                    if np.asarray(t).dtype.kind in "uiUSO" and np.asarray(t).dtype.kind != "f"
                    else str(_num(t))
                )
                events.append((tt, _num(la)))
        return dict(
            nbchan=int(num("nbchan")),
            pnts=int(num("pnts")),
            trials=int(num("trials", 1.0)),
            srate=num("srate"),
            xmin=num("xmin", 0.0),
            data=data,
            labels=labels,
            types=types,
            xyz=np.asarray(xyz, dtype=float).reshape(-1, 3),
            events=events,
            event_durations=durations[: len(events)],
        )


def read_eeglab(
    path: str | Path, units: str | list[str] | dict = "uV", on_nonfinite: str = "raise"
) -> Raw:
    """Read a continuous EEGLAB recording into a :class:`Raw` in volts.

    Parameters
    ----------
    path : path-like
        The ``.set`` file.
    units : str | list of str | dict
        Unit of the stored numbers (one for all channels, one per channel, or a
        mapping channel name -> unit with µV for channels not in it); EEGLAB
        stores none and uses microvolts by convention.
    on_nonfinite : {"raise", "annotate"}
        NaN/Inf samples: an error naming the file, channel and time, or
        ``"BAD_nonfinite"`` annotations (see :func:`exgsrc.io.checks.check_finite`).

    Returns
    -------
    Raw
        ``meta`` has ``source``, ``format="EEGLAB"``, ``events`` (list of
        ``(type, onset_sample_0based)``), ``file_positions`` ((n_ch, 3) EEGLAB
        X/Y/Z converted to x=right, y=front, z=up, in the file's unknown unit),
        ``suspect_channels`` (see :func:`exgsrc.io.checks.find_bad_channels`),
        ``warnings``; ``annotations``: the events (see the module docstring).

    Raises
    ------
    BidsError
        Missing file, missing ``.fdt`` or one whose size is not ``nbchan x pnts``
        float32 values, epoched data, inconsistent sizes, non-finite samples,
        duplicate channel names or unknown units.
    """
    path = Path(path)
    st = read_eeglab_struct(path)
    n_ch, n_t, n_tr = st["nbchan"], st["pnts"], st["trials"]
    if n_tr != 1:
        raise BidsError(
            f"{path}: epoched EEGLAB data ({n_tr} trials) not supported; need continuous"
        )
    data = st["data"]
    if isinstance(data, str):
        fdt = path.parent / data
        if not fdt.is_file():
            # EEGLAB sometimes stores a different case or the .set's own stem
            alt = path.with_suffix(".fdt")
            if alt.is_file():
                fdt = alt
            else:
                raise BidsError(f"{path}: header points to data file {data!r}, which is missing")
        expected = n_ch * n_t * 4
        size = fdt.stat().st_size
        if size < expected:
            raise BidsError(
                f"{fdt}: truncated data file ({size} bytes, expected {expected} for "
                f"{n_ch} channels x {n_t} samples float32)"
            )
        check_data_size(fdt, size, expected, f"nbchan={n_ch} x pnts={n_t} x float32 (4 bytes)")
        arr = np.fromfile(fdt, dtype="<f4", count=n_ch * n_t).reshape(n_t, n_ch).T
    else:
        arr = np.asarray(data)
        if arr.ndim == 1 and n_ch == 1:
            arr = arr[np.newaxis]
        if arr.shape != (n_ch, n_t):
            raise BidsError(
                f"{path}: data shape {arr.shape} does not match nbchan={n_ch}, pnts={n_t}"
            )
    labels = st["labels"] or [f"EEG{i:03d}" for i in range(1, n_ch + 1)]
    if len(labels) != n_ch:
        raise BidsError(f"{path}: {len(labels)} chanlocs but nbchan={n_ch}")
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise BidsError(f"{path}: duplicate channel names {dup}")
    types = [_TYPE_MAP.get(t.strip().lower(), "eeg") for t in (st["types"] or [""] * n_ch)]
    if isinstance(units, dict):
        units = [units.get(lab, "uV") for lab in labels]
    scale = unit_scale(units, n_ch, path, labels)
    volts = arr.astype(np.float64) * scale[:, np.newaxis]
    sfreq = float(st["srate"])
    events = [(t, int(round(lat - 1))) for t, lat in st["events"] if np.isfinite(lat)]
    annotations = _events_to_annotations(st, sfreq)
    warnings: list[str] = []
    volts, bad_segments, msg = check_finite(volts, sfreq, labels, path, on_nonfinite)
    if msg:
        warnings.append(msg)
        annotations = annotations + bad_segments
    suspects = find_bad_channels(volts, labels)
    warnings.extend(f"{path}: channel {ch} is {why}" for ch, why in suspects)
    xyz = st["xyz"]
    pos = np.column_stack([-xyz[:, 1], xyz[:, 0], xyz[:, 2]]) if xyz.size else xyz
    return Raw(
        data=volts,
        sfreq=sfreq,
        ch_names=tuple(labels),
        ch_types=tuple(types),
        bads=(),
        first_time=float(st["xmin"]),
        meta={
            "source": str(path),
            "format": "EEGLAB",
            "events": events,
            "file_positions": pos,
            "units": units,
            "suspect_channels": suspects,
            "warnings": warnings,
        },
        annotations=annotations,
    )


def _events_to_annotations(st: dict, sfreq: float) -> Annotations:
    """EEGLAB events as MNE reads them: onset (latency - 1) / srate, duration / srate."""
    ev = st["events"]
    dur = list(st.get("event_durations") or [])
    dur = (dur + [0.0] * len(ev))[: len(ev)]
    lat = np.array([e[1] for e in ev], dtype=float)
    keep = np.isfinite(lat)
    d = np.array(dur, dtype=float)[keep] / sfreq if ev else np.zeros(0)
    return Annotations(
        (lat[keep] - 1.0) / sfreq,
        np.where(d < 0, np.nan, d),
        tuple(str(e[0]) for e, k in zip(ev, keep, strict=True) if k),
    )


def read_eeglab_montage(set_path: str | Path, radius: float = 0.095) -> Montage | None:
    """Channel positions stored in an EEGLAB ``.set`` file, in the RAS head frame.

    EEGLAB's ``chanlocs`` X/Y/Z are in EEGLAB's frame (x anterior, y left, z
    up; converted by :func:`exgsrc.io.coords.to_ras_head`) and carry no unit:
    the unit (m, cm or mm) is the one that puts them on a sphere of radius
    0.04-0.2 m; positions on a unit sphere (EEGLAB's spherical templates) are
    scaled to ``radius``. Each choice is recorded in ``meta["warnings"]``.

    Parameters
    ----------
    set_path : path-like
        The ``.set`` file.
    radius : float
        Head radius (m) given to unit-sphere positions.

    Returns
    -------
    Montage | None
        Channels with finite X/Y/Z (the others in ``meta["missing"]``);
        None when fewer than 4 channels have a position.

    Raises
    ------
    BidsError
        Unreadable file, or positions no unit makes head-sized.
    """
    path = Path(set_path)
    st = read_eeglab_struct(path)
    labels, xyz = list(st["labels"]), np.asarray(st["xyz"], dtype=float).reshape(-1, 3)
    if len(labels) != xyz.shape[0]:
        return None
    ok = np.all(np.isfinite(xyz), axis=1)
    if ok.sum() < 4:
        return None
    r, _ = fit_sphere_radius(xyz[ok])
    lo, hi = _PLAUSIBLE
    unit = next(
        (u for u, f in (("m", 1.0), ("cm", 1e-2), ("mm", 1e-3)) if lo <= r * f <= hi), None
    )
    if unit is not None:
        fac, how = length_scale(unit, path), f"unit {unit!r} judged from their scale"
    elif 0.5 <= r <= 2.0:
        fac, how = radius / r, f"on a unit sphere: scaled to {radius * 1000:.0f} mm"
    else:
        raise BidsError(
            f"{path}: chanlocs X/Y/Z span a sphere of radius {r:.4g} (no unit); no length "
            "unit makes that a head"
        )
    conv = to_ras_head(xyz[ok] * fac, "EEGLAB", source=str(path))
    note = (
        f"{path}: no electrodes.tsv; using the positions of {int(ok.sum())} channels stored "
        f"in the .set file (EEGLAB frame x anterior, y left, z up -> RAS; {how})"
    )
    return Montage(
        tuple(lab for lab, k in zip(labels, ok, strict=True) if k),
        conv.pos,
        conv.frame,
        {
            "source": str(path),
            "fiducials": {},
            "missing": [lab for lab, k in zip(labels, ok, strict=True) if not k],
            "warnings": [note, *conv.warnings],
            "coord_frame_original": conv.original,
            "coord_transform": conv.trans @ np.diag([fac, fac, fac, 1.0]),
        },
    )
