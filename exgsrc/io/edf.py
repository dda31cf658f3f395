"""EDF/EDF+ and BDF/BDF+ reader built on ``edfio`` (the maintained reader/writer).

Physical values are computed by edfio from the digital samples and the
physical/digital ranges in the header; they are converted to volts from each
signal's ``physical_dimension`` (V, mV, uV/µV, nV). EDF+ annotation signals
become ``meta["annotations"]``.
"""

from __future__ import annotations

import warnings as _warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..containers import Raw
from ._errors import BidsError
from .units import volt_scale

__all__ = ["read_edf"]


def read_edf(path: str | Path) -> Raw:
    """Read an EDF(+) or BDF(+) file into a :class:`Raw` in volts.

    Parameters
    ----------
    path : path-like
        ``.edf`` or ``.bdf`` file (BDF by extension).

    Returns
    -------
    Raw
        All signals at the most common sampling rate (others are dropped with a
        recorded warning), types ``"eeg"`` (refined by ``channels.tsv``);
        ``meta``: ``source``, ``format``, ``file_units`` (dict), ``annotations``
        (list of (onset s, duration s, text)), ``warnings``.

    Raises
    ------
    BidsError
        Missing, truncated or corrupt file, discontinuous EDF+D, duplicate labels.
    """
    import edfio

    path = Path(path)
    if not path.is_file():
        raise BidsError(f"{path}: EDF/BDF file not found")
    is_bdf = path.suffix.lower() == ".bdf"
    warnings: list[str] = []
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
            "warnings": warnings,
        },
    )
