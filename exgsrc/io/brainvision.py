"""BrainVision reader (``.vhdr`` header, ``.vmrk`` markers, binary ``.eeg`` data).

Supported: ``DataFormat=BINARY`` with ``BinaryFormat`` ``INT_16``, ``UINT_16``,
``INT_32`` or ``IEEE_FLOAT_32`` (little-endian, or big-endian with
``UseBigEndianOrder=YES`` in ``[Binary Infos]``), ``DataOrientation``
``MULTIPLEXED`` (samples interleaved across channels) or ``VECTORIZED`` (one
channel after the other). Each channel line ``ChN=<name>,<ref>,<resolution>,<unit>``
gives the factor from stored numbers to ``unit`` (default 1 µV); values are
converted to volts. ``DataFormat=ASCII`` is rejected with a clear error.

The data file's size must agree with the header: a size that is not a whole
number of values of the declared format, or more data than ``DataPoints``
declares, is an error (the format or channel count is wrong); a shorter
multiplexed file is a truncation (warning). Markers become ``Raw.annotations``
as MNE-Python names them (``"<type>/<description>"``, e.g. ``"Bad
Interval/Bad Min-Max"``, which starts with "Bad" and so rejects epochs; the
first ``New Segment`` marker, which only carries the recording date, is left
out).
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import numpy as np

from ..annotations import Annotations
from ..containers import Raw
from ._errors import BidsError
from .checks import check_data_size, check_finite, find_bad_channels
from .units import volt_scale

__all__ = ["read_brainvision", "read_vhdr", "read_vmrk", "markers_to_annotations"]

_DTYPES = {
    "INT_16": np.dtype("<i2"),
    "UINT_16": np.dtype("<u2"),
    "INT_32": np.dtype("<i4"),
    "IEEE_FLOAT_32": np.dtype("<f4"),
}


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    m = re.search(rb"Codepage\s*=\s*(\S+)", raw)
    enc = "utf-8" if m and m.group(1).upper().startswith(b"UTF") else "latin-1"
    try:
        return raw.decode(enc)
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _ini(path: Path, kind: str) -> configparser.ConfigParser:
    if not path.is_file():
        raise BidsError(f"{path}: BrainVision {kind} file not found")
    text = _read_text(path)
    lines = text.splitlines()
    if not lines or "Brain" not in lines[0] or kind not in lines[0].lower():
        raise BidsError(f"{path}: not a BrainVision {kind} file (first line {lines[:1]!r})")
    # drop the identification line and comment lines; keep the INI part
    body = "\n".join(ln for ln in lines[1:] if not ln.lstrip().startswith(";"))
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # keys are case-sensitive (Ch1, Mk1)
    try:
        cp.read_string(body)
    except configparser.Error as err:
        raise BidsError(f"{path}: malformed BrainVision {kind} ({err})") from None
    return cp


def _split_fields(value: str) -> list[str]:
    """Split a comma-separated BrainVision field list, where ``\\1`` stands for a comma."""
    return [f.replace(r"\1", ",") for f in value.split(",")]


def read_vhdr(path: str | Path) -> dict:
    """Parse a ``.vhdr`` header.

    Parameters
    ----------
    path : str | Path
        The header file; a missing section or key raises :class:`BidsError`
        naming the file.

    Returns
    -------
    dict
        ``data_file``, ``marker_file`` (Paths), ``n_channels``, ``sfreq`` (Hz),
        ``format`` ("BINARY"/"ASCII"), ``orientation``, ``binary_format``,
        ``big_endian`` (bool, ``UseBigEndianOrder=YES``), ``ch_names``,
        ``resolution`` (n_ch,), ``units`` (list of str), ``n_samples`` (int or
        None when not given).
    """
    path = Path(path)
    cp = _ini(path, "header")
    if not cp.has_section("Common Infos"):
        raise BidsError(f"{path}: section [Common Infos] missing")
    ci = cp["Common Infos"]

    def need(key):
        if key not in ci:
            raise BidsError(f"{path}: [Common Infos] {key} missing")
        return ci[key].strip()

    data_file = path.parent / need("DataFile")
    marker_file = path.parent / ci["MarkerFile"].strip() if "MarkerFile" in ci else None
    try:
        n_ch = int(need("NumberOfChannels"))
        interval_us = float(need("SamplingInterval"))
    except ValueError:
        raise BidsError(f"{path}: NumberOfChannels/SamplingInterval are not numbers") from None
    if n_ch <= 0 or interval_us <= 0:
        raise BidsError(f"{path}: NumberOfChannels={n_ch}, SamplingInterval={interval_us} invalid")
    fmt = ci.get("DataFormat", "BINARY").strip().upper()
    orient = ci.get("DataOrientation", "MULTIPLEXED").strip().upper()
    n_samples = None
    if "DataPoints" in ci:
        try:
            n_samples = int(ci["DataPoints"].strip())
        except ValueError:
            pass
    bin_fmt = None
    big_endian = False
    if fmt == "BINARY":
        if not cp.has_section("Binary Infos") or "BinaryFormat" not in cp["Binary Infos"]:
            raise BidsError(f"{path}: [Binary Infos] BinaryFormat missing")
        bin_fmt = cp["Binary Infos"]["BinaryFormat"].strip().upper()
        if bin_fmt not in _DTYPES:
            raise BidsError(
                f"{path}: unsupported BinaryFormat {bin_fmt!r} (one of {list(_DTYPES)})"
            )
        order = cp["Binary Infos"].get("UseBigEndianOrder", "NO").strip().upper()
        if order not in ("YES", "NO"):
            raise BidsError(f"{path}: [Binary Infos] UseBigEndianOrder={order!r} (YES or NO)")
        big_endian = order == "YES"
    if not cp.has_section("Channel Infos"):
        raise BidsError(f"{path}: section [Channel Infos] missing")
    chi = cp["Channel Infos"]
    names, res, units = [], [], []
    for i in range(1, n_ch + 1):
        key = f"Ch{i}"
        if key not in chi:
            raise BidsError(f"{path}: [Channel Infos] {key} missing (NumberOfChannels={n_ch})")
        fields = _split_fields(chi[key])
        names.append(fields[0].strip())
        r = fields[2].strip() if len(fields) > 2 else ""
        try:
            res.append(float(r) if r else 1.0)
        except ValueError:
            raise BidsError(f"{path}: {key}: resolution {r!r} is not a number") from None
        u = fields[3].strip() if len(fields) > 3 and fields[3].strip() else "µV"
        units.append(u)
    return dict(
        data_file=data_file,
        marker_file=marker_file,
        n_channels=n_ch,
        sfreq=1e6 / interval_us,
        format=fmt,
        orientation=orient,
        binary_format=bin_fmt,
        big_endian=big_endian,
        ch_names=names,
        resolution=np.asarray(res),
        units=units,
        n_samples=n_samples,
    )


def read_vmrk(path: str | Path) -> list[tuple[str, str, int, int]]:
    """Markers of a BrainVision ``.vmrk`` file.

    Parameters
    ----------
    path : str | Path
        The marker file.

    Returns
    -------
    markers : list of (str, str, int, int)
        ``(type, description, onset, duration)`` per marker, onset as a 0-based
        sample index and duration in samples, in file order.
    """
    path = Path(path)
    cp = _ini(path, "marker")
    out = []
    if not cp.has_section("Marker Infos"):
        return out
    for key, val in cp["Marker Infos"].items():
        if not re.match(r"^Mk\d+$", key):
            continue
        f = _split_fields(val)
        if len(f) < 3:
            raise BidsError(f"{path}: marker {key} malformed ({val!r})")
        try:
            pos = int(f[2]) - 1
            dur = int(f[3]) if len(f) > 3 and f[3].strip() else 1
        except ValueError:
            raise BidsError(f"{path}: marker {key} position {f[2]!r} not an integer") from None
        out.append((f[0].strip(), f[1].strip(), pos, dur))
    return out


def read_brainvision(path: str | Path, on_nonfinite: str = "raise") -> Raw:
    """Read a BrainVision recording into a :class:`Raw` in volts.

    Parameters
    ----------
    path : path-like
        The ``.vhdr`` header.
    on_nonfinite : {"raise", "annotate"}
        NaN/Inf samples (``IEEE_FLOAT_32``): an error naming the file, channel and
        time, or ``"BAD_nonfinite"`` annotations (see
        :func:`exgsrc.io.checks.check_finite`).

    Returns
    -------
    Raw
        ``meta``: ``source``, ``format="BrainVision"``, ``file_units`` (dict),
        ``markers`` (see :func:`read_vmrk`), ``suspect_channels`` (flat,
        implausible or full-scale channels, see
        :func:`exgsrc.io.checks.find_bad_channels`), ``warnings``;
        ``annotations``: the markers (see the module docstring).

    Raises
    ------
    BidsError
        Missing header/data file, unsupported format, a data file whose size does
        not match the declared format/channels/length, truncated data that cannot
        be recovered, non-finite samples, duplicate channel names.
    """
    path = Path(path)
    h = read_vhdr(path)
    warnings: list[str] = []
    if h["format"] != "BINARY":
        raise BidsError(f"{path}: DataFormat={h['format']} not supported (only BINARY)")
    dfile = h["data_file"]
    if not dfile.is_file():
        raise BidsError(f"{path}: header points to data file {dfile.name!r}, which is missing")
    names = h["ch_names"]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BidsError(f"{path}: duplicate channel names {dup}")
    dt = _DTYPES[h["binary_format"]]
    if h["big_endian"]:
        dt = dt.newbyteorder(">")
    n_ch = h["n_channels"]
    size = dfile.stat().st_size
    n_items = size // dt.itemsize
    n_samp = n_items // n_ch
    if size % dt.itemsize:
        raise BidsError(
            f"{dfile}: data file has {size} bytes, not a whole number of {h['binary_format']} "
            f"values ({dt.itemsize} bytes each): BinaryFormat in {path.name} is wrong or the "
            "file is corrupt"
        )
    if h["n_samples"] is not None:
        check_data_size(
            dfile,
            size,
            h["n_samples"] * n_ch * dt.itemsize,
            f"DataPoints={h['n_samples']} x NumberOfChannels={n_ch} x "
            f"{h['binary_format']} ({dt.itemsize} bytes)",
            allow_short=True,
        )
    if size % (dt.itemsize * n_ch):
        if h["orientation"] == "VECTORIZED":
            raise BidsError(
                f"{dfile}: truncated data file ({size} bytes is not a whole number of "
                f"{n_ch}-channel {h['binary_format']} samples)"
            )
        warnings.append(
            f"{dfile}: truncated data file ({size} bytes); incomplete last sample dropped"
        )
    if h["n_samples"] is not None and h["n_samples"] != n_samp:
        if h["n_samples"] > n_samp:
            if h["orientation"] == "VECTORIZED":
                raise BidsError(
                    f"{dfile}: truncated data file ({n_samp} samples, header says {h['n_samples']})"
                )
            warnings.append(
                f"{dfile}: truncated data file ({n_samp} samples, header says {h['n_samples']})"
            )
        else:
            n_samp = h["n_samples"]
    if n_samp == 0:
        raise BidsError(f"{dfile}: data file holds no complete sample")
    raw = np.fromfile(dfile, dtype=dt, count=n_samp * n_ch)
    if h["orientation"] == "MULTIPLEXED":
        data = raw.reshape(n_samp, n_ch).T.astype(np.float64)
    elif h["orientation"] == "VECTORIZED":
        data = raw.reshape(n_ch, n_samp).astype(np.float64)
    else:
        raise BidsError(f"{path}: unknown DataOrientation {h['orientation']!r}")
    scale = np.empty(n_ch)
    for i, u in enumerate(h["units"]):
        s = volt_scale(u)
        if s is None:
            warnings.append(
                f"{path}: channel {names[i]} has non-voltage unit {u!r}; kept as stored"
            )
            s = 1.0
        scale[i] = s * h["resolution"][i]
    data *= scale[:, np.newaxis]
    markers = []
    if h["marker_file"] is not None:
        if h["marker_file"].is_file():
            markers = read_vmrk(h["marker_file"])
        else:
            warnings.append(f"{path}: marker file {h['marker_file'].name!r} missing")
    sfreq = float(h["sfreq"])
    annotations = markers_to_annotations(markers, sfreq)
    data, bad_segments, msg = check_finite(data, sfreq, names, dfile, on_nonfinite)
    if msg:
        warnings.append(msg)
        annotations = annotations + bad_segments
    full_scale = None
    if dt.kind in "iu":
        info = np.iinfo(dt)
        full_scale = np.column_stack([info.min * scale, info.max * scale])
    suspects = find_bad_channels(data, names, full_scale=full_scale)
    warnings.extend(f"{path}: channel {ch} is {why}" for ch, why in suspects)
    return Raw(
        data=data,
        sfreq=sfreq,
        ch_names=tuple(names),
        ch_types=("eeg",) * n_ch,
        bads=(),
        first_time=0.0,
        meta={
            "source": str(path),
            "format": "BrainVision",
            "file_units": dict(zip(names, h["units"], strict=True)),
            "markers": markers,
            "suspect_channels": suspects,
            "warnings": warnings,
        },
        annotations=annotations,
    )


def markers_to_annotations(markers, sfreq: float) -> Annotations:
    """BrainVision markers as annotations, named as MNE-Python names them.

    Parameters
    ----------
    markers : list of (str, str, int, int)
        ``(type, description, onset sample (0-based), duration in samples)`` as
        returned by :func:`read_vmrk`.
    sfreq : float
        Sampling frequency (Hz).

    Returns
    -------
    Annotations
        Onset ``sample / sfreq`` (s), duration ``n / sfreq`` (s), description
        ``"<type>/<description>"``; a first marker of type ``New Segment`` is left
        out (it only carries the recording date), later ones (discontinuities)
        are kept.
    """
    items = list(markers)
    if items and items[0][0] == "New Segment":
        items = items[1:]
    return Annotations(
        np.array([m[2] for m in items], dtype=float) / sfreq,
        np.array([m[3] for m in items], dtype=float) / sfreq,
        tuple(f"{m[0]}/{m[1]}" for m in items),
    )
