"""EDF/EDF+ and BDF/BDF+ reader built on ``edfio`` (the maintained reader/writer).

Physical values are computed by edfio from the digital samples and the
physical/digital ranges in the header; they are converted to volts from each
signal's ``physical_dimension`` (V, mV, uV/µV, nV). EDF+ annotation signals
become ``meta["annotations"]`` and ``Raw.annotations`` (e.g. the ``BAD_ACQ_SKIP``
that MNE's exporter writes over the padding of the last data record).

Before edfio reads anything, the fixed header is parsed and checked
(:func:`read_edf_header`): record duration, samples per record, digital range,
the sampling rate they imply (against the expected rate, e.g. ``eeg.json``'s
``SamplingFrequency``) and the file size they imply. Each problem is a
:class:`BidsError` naming the file and the header fields.
"""

from __future__ import annotations

import warnings as _warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..annotations import Annotations
from ..containers import Raw
from ._errors import BidsError
from .checks import check_finite, find_bad_channels
from .units import volt_scale

__all__ = ["read_edf", "read_edf_header", "MAX_SFREQ"]

#: Highest sampling rate (Hz) a header may imply before it is taken as corrupt.
MAX_SFREQ = 1e6

_FIELDS = (  # per-signal header fields and their widths (bytes), in file order
    ("label", 16),
    ("transducer", 80),
    ("physical_dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefilter", 80),
    ("samples_per_record", 8),
    ("reserved", 32),
)


def read_edf_header(path: str | Path) -> dict:
    """Parse the fixed ASCII header of an EDF/BDF file (no data are read).

    Parameters
    ----------
    path : path-like
        ``.edf`` or ``.bdf`` file.

    Returns
    -------
    header : dict
        ``header_bytes``, ``n_records`` (int, -1 = unknown), ``record_duration``
        (float, s), ``n_signals``, ``bytes_per_sample`` (2 for EDF, 3 for BDF),
        ``file_size`` (bytes), and per-signal lists ``label``,
        ``physical_dimension`` (str), ``physical_min``, ``physical_max``,
        ``digital_min``, ``digital_max`` (float), ``samples_per_record`` (int).

    Raises
    ------
    BidsError
        Header shorter than declared or a numeric field that is not a number,
        naming the file and the field.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fid:
        head = fid.read(256)
        if len(head) < 256:
            raise BidsError(
                f"{path}: cannot read EDF/BDF file: {len(head)} bytes, shorter than its 256-byte header"
            )

        def num(raw: bytes, field: str, kind=float):
            text = raw.decode("latin-1").strip()
            try:
                return kind(float(text)) if kind is int else kind(text)
            except ValueError:
                raise BidsError(
                    f"{path}: header field {field!r} is {text!r}, not a number"
                ) from None

        n_sig = num(head[252:256], "number of signals", int)
        if n_sig <= 0:
            raise BidsError(f"{path}: header field 'number of signals' is {n_sig}")
        h = dict(
            header_bytes=num(head[184:192], "number of bytes in header", int),
            n_records=num(head[236:244], "number of data records", int),
            record_duration=num(head[244:252], "duration of a data record"),
            n_signals=n_sig,
            bytes_per_sample=3 if head[:1] == b"\xff" else 2,
            file_size=size,
        )
        block = fid.read(256 * n_sig)
    if len(block) < 256 * n_sig:
        raise BidsError(
            f"{path}: header truncated ({256 + len(block)} bytes, {n_sig} signals need "
            f"{256 * (n_sig + 1)})"
        )
    pos = 0
    for name, width in _FIELDS:
        vals = [block[pos + i * width : pos + (i + 1) * width] for i in range(n_sig)]
        pos += width * n_sig
        if name in ("label", "physical_dimension"):
            h[name] = [v.decode("latin-1").strip() for v in vals]
        elif name == "samples_per_record":
            h[name] = [
                num(v, f"samples per record of signal {i + 1}", int) for i, v in enumerate(vals)
            ]
        elif name not in ("transducer", "prefilter", "reserved"):
            h[name] = [
                num(v, f"{name.replace('_', ' ')} of signal {i + 1}") for i, v in enumerate(vals)
            ]
    return h


def _is_annotation_signal(label: str) -> bool:
    return label in ("EDF Annotations", "BDF Annotations")


def _check_edf_header(
    path: Path, h: dict, expected_sfreq, expected_from: str, max_sfreq: float
) -> None:
    """Refuse headers that cannot describe the data (before edfio allocates anything)."""
    n_sig = h["n_signals"]
    if h["header_bytes"] != 256 * (n_sig + 1):
        raise BidsError(
            f"{path}: header field 'number of bytes in header' is {h['header_bytes']}, but "
            f"{n_sig} signals make a {256 * (n_sig + 1)}-byte header"
        )
    data_sig = [i for i in range(n_sig) if not _is_annotation_signal(h["label"][i])]
    if not data_sig:
        raise BidsError(f"{path}: no data signal (only EDF+ annotation signals)")
    dur = h["record_duration"]
    if not (np.isfinite(dur) and dur > 0):
        raise BidsError(
            f"{path}: header field 'duration of a data record' is {dur!r} s; it must be "
            "positive to give a sampling rate (samples per record / record duration)"
        )
    spr = np.asarray(h["samples_per_record"], dtype=np.int64)
    bad_spr = [h["label"][i] for i in range(n_sig) if spr[i] <= 0]
    if bad_spr:
        raise BidsError(
            f"{path}: header field 'samples per record' is not positive for signals {bad_spr}"
        )
    for i in data_sig:
        dmin, dmax = h["digital_min"][i], h["digital_max"][i]
        if not dmin < dmax:
            raise BidsError(
                f"{path}: signal {h['label'][i]!r}: digital minimum {dmin:g} "
                f"{'equals' if dmin == dmax else 'exceeds'} digital maximum {dmax:g}; "
                "cannot scale to physical values"
            )
        pmin, pmax = h["physical_min"][i], h["physical_max"][i]
        if not (np.isfinite(pmin) and np.isfinite(pmax)):
            raise BidsError(
                f"{path}: signal {h['label'][i]!r}: physical minimum/maximum "
                f"{pmin!r}/{pmax!r} are not finite"
            )
    rates = Counter(float(spr[i] / dur) for i in data_sig)
    sfreq = max(rates.items(), key=lambda kv: (kv[1], kv[0]))[0]
    i0 = next(i for i in data_sig if spr[i] / dur == sfreq)
    fields = (
        f"{int(spr[i0])} samples per record (signal {h['label'][i0]!r}) / record duration "
        f"{dur:g} s = {sfreq:g} Hz"
    )
    if sfreq > max_sfreq:
        raise BidsError(f"{path}: header gives {fields}, an implausible sampling rate")
    if expected_sfreq is not None and abs(sfreq - float(expected_sfreq)) > 1e-6 * float(
        expected_sfreq
    ):
        raise BidsError(
            f"{path}: header gives {fields}, but {expected_from} is {float(expected_sfreq):g} Hz"
        )
    record_bytes = int(spr.sum()) * h["bytes_per_sample"]
    data_bytes = h["file_size"] - h["header_bytes"]
    if data_bytes < record_bytes:
        raise BidsError(
            f"{path}: file holds {max(data_bytes, 0)} data bytes, less than one data record "
            f"({int(spr.sum())} samples per record x {h['bytes_per_sample']} bytes = "
            f"{record_bytes} bytes by the header)"
        )


def read_edf(
    path: str | Path,
    expected_sfreq: float | None = None,
    expected_from: str = "the expected sampling rate",
    on_nonfinite: str = "raise",
    max_sfreq: float = MAX_SFREQ,
) -> Raw:
    """Read an EDF(+) or BDF(+) file into a :class:`Raw` in volts.

    Parameters
    ----------
    path : path-like
        ``.edf`` or ``.bdf`` file (BDF by extension).
    expected_sfreq : float | None
        Sampling rate (Hz) the file must have (e.g. ``eeg.json``'s
        ``SamplingFrequency``); a header that implies another rate is an error
        raised before any data are read.
    expected_from : str
        Where ``expected_sfreq`` comes from, quoted in that error.
    on_nonfinite : {"raise", "annotate"}
        What to do with non-finite physical values (possible only with absurd
        header ranges); see :func:`exgsrc.io.checks.check_finite`.
    max_sfreq : float
        Highest plausible sampling rate (Hz) implied by the header.

    Returns
    -------
    Raw
        All signals at the most common sampling rate (others are dropped with a
        recorded warning), types ``"eeg"`` (refined by ``channels.tsv``);
        ``meta``: ``source``, ``format``, ``file_units`` (dict), ``annotations``
        (list of (onset s, duration s, text)), ``suspect_channels`` (see
        :func:`exgsrc.io.checks.find_bad_channels`), ``warnings``;
        ``annotations``: the EDF+ annotations (duration 0 where the file gives none).

    Raises
    ------
    BidsError
        Missing, truncated or corrupt file, discontinuous EDF+D, duplicate labels,
        a header whose record duration, samples per record or digital range cannot
        describe data, a sampling rate other than ``expected_sfreq``.
    """
    import edfio

    path = Path(path)
    if not path.is_file():
        raise BidsError(f"{path}: EDF/BDF file not found")
    is_bdf = path.suffix.lower() == ".bdf"
    warnings: list[str] = []
    _check_edf_header(path, read_edf_header(path), expected_sfreq, expected_from, max_sfreq)
    try:
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            f = edfio.read_bdf(path) if is_bdf else edfio.read_edf(path)
    except Exception as err:
        raise BidsError(
            f"{path}: cannot read {'BDF' if is_bdf else 'EDF'} file ({type(err).__name__}: {err})"
        ) from None
    for w in caught:
        msg = str(w.message)
        if "truncat" in msg.lower() or "contains" in msg.lower():
            warnings.append(f"{path}: truncated data file: {msg}")
        else:
            warnings.append(f"{path}: {msg}")
    try:
        continuous = f.is_continuous
    except Exception:
        continuous = True
    if not continuous:
        raise BidsError(f"{path}: discontinuous EDF+D/BDF+D recordings are not supported")
    signals = list(f.signals)
    if not signals:
        raise BidsError(f"{path}: no data signal")
    rates = Counter(float(s.sampling_frequency) for s in signals)
    sfreq = max(rates.items(), key=lambda kv: (kv[1], kv[0]))[0]
    keep = [s for s in signals if float(s.sampling_frequency) == sfreq]
    dropped = [s.label for s in signals if float(s.sampling_frequency) != sfreq]
    if dropped:
        warnings.append(
            f"{path}: signals {dropped} have another sampling rate than {sfreq} Hz; dropped"
        )
    names = [s.label.strip() for s in keep]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BidsError(f"{path}: duplicate channel names {dup}")
    data = None
    units = {}
    for i, s in enumerate(keep):
        u = s.physical_dimension.strip()
        units[names[i]] = u
        scale = volt_scale(u)
        if scale is None:
            warnings.append(
                f"{path}: channel {names[i]} has non-voltage unit {u!r}; values kept as stored"
            )
            scale = 1.0
        # physical = (digital - dmin) * (prange / drange) + pmin, then to volts
        dig = s.digital
        if data is None:
            data = np.empty((len(keep), dig.size))
        elif dig.size != data.shape[1]:
            raise BidsError(
                f"{path}: signal {names[i]} has {dig.size} samples, not {data.shape[1]}"
            )
        gain = (s.physical_max - s.physical_min) / (s.digital_max - s.digital_min)
        off = s.physical_max - gain * s.digital_max
        np.multiply(dig, gain * scale, out=data[i])
        data[i] += off * scale
    try:
        ann = [(float(a.onset), a.duration, a.text) for a in f.annotations]
    except Exception as err:  # malformed annotation signal
        warnings.append(f"{path}: could not read annotations ({err})")
        ann = []
    annotations = Annotations(
        [a[0] for a in ann],
        [0.0 if a[1] is None else float(a[1]) for a in ann],
        [a[2] for a in ann],
    )
    data, bad_segments, msg = check_finite(data, float(sfreq), names, path, on_nonfinite)
    if msg:
        warnings.append(msg)
        annotations = annotations + bad_segments
    suspects = find_bad_channels(data, names)
    warnings.extend(f"{path}: channel {ch} is {why}" for ch, why in suspects)
    return Raw(
        data=data,
        sfreq=float(sfreq),
        ch_names=tuple(names),
        ch_types=("eeg",) * len(names),
        bads=(),
        first_time=0.0,
        meta={
            "source": str(path),
            "format": "BDF" if is_bdf else "EDF",
            "file_units": units,
            "annotations": ann,
            "suspect_channels": suspects,
            "warnings": warnings,
        },
        annotations=annotations,
    )
