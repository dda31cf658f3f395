"""Data checks run at read time: non-finite samples, flat and implausible channels, file sizes.

These are shared by the EDF/BDF, BrainVision and EEGLAB readers. Errors are
:class:`~exgsrc.io.BidsError` naming the file and the problem; suspicious
channels are *reported* (never dropped) as ``(channel, reason)`` pairs that the
caller may add to ``Raw.bads``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..annotations import Annotations
from ._errors import BidsError

__all__ = [
    "NONFINITE_DESCRIPTION",
    "check_finite",
    "find_bad_channels",
    "check_data_size",
    "VOLTAGE_TYPES",
]

#: Description of the bad segments made from non-finite samples.
NONFINITE_DESCRIPTION = "BAD_nonfinite"
#: Channel types whose amplitude is checked by :func:`find_bad_channels` when types are given.
VOLTAGE_TYPES = ("eeg", "eog", "ecg", "emg")


def check_finite(
    data: np.ndarray,
    sfreq: float,
    ch_names,
    source: str | Path,
    on_nonfinite: str = "raise",
) -> tuple[np.ndarray, Annotations, str | None]:
    """Find NaN/Inf samples; raise, or mark them as bad segments and fill them in.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples (any unit). In ``"annotate"`` mode the non-finite values are
        replaced in place.
    sfreq : float
        Sampling frequency (Hz).
    ch_names : sequence of str, length n_channels
        Named in the error.
    source : str | Path
        The data file, named in the error.
    on_nonfinite : {"raise", "annotate"}
        ``"raise"``: :class:`BidsError` naming the file, the channel and time (s)
        of the first non-finite sample, and how many there are. ``"annotate"``:
        each run of samples at which any channel is non-finite becomes a
        ``"BAD_nonfinite"`` annotation (onset = first bad sample / sfreq,
        duration = run length / sfreq), and the non-finite values are replaced by
        linear interpolation between the nearest finite samples of the same
        channel (held constant at the edges; zeros for an all-non-finite channel),
        so that filters do not spread them.

    Returns
    -------
    data : ndarray, shape (n_channels, n_times)
        The same array (filled in when annotating).
    annotations : exgsrc.annotations.Annotations
        The bad segments (empty when all samples are finite).
    message : str | None
        A description of what was found (for the reader's warnings), or None.

    Raises
    ------
    BidsError
        In ``"raise"`` mode when any sample is NaN or infinite.
    """
    if on_nonfinite not in ("raise", "annotate"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'annotate', got {on_nonfinite!r}")
    # fast path without an (n_channels, n_times) mask: NaN/Inf propagate into row sums
    # (a finite overflow only sends us on to the exact check below)
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(data.sum(axis=1)).all():
            return data, Annotations(), None
    bad = ~np.isfinite(data)
    if not bad.any():
        return data, Annotations(), None
    bad_t = bad.any(axis=0)  # (n_times,)
    k = int(np.argmax(bad_t))
    ch = int(np.argmax(bad[:, k]))
    n_bad = int(np.count_nonzero(bad))
    n_nan = int(np.count_nonzero(np.isnan(data)))
    chans = np.flatnonzero(bad.any(axis=1))
    what = (
        f"{n_bad} non-finite samples ({n_nan} NaN, {n_bad - n_nan} Inf) in "
        f"{chans.size} channel(s); first at channel {ch_names[ch]!r}, t = {k / sfreq:.6g} s "
        f"(sample {k})"
    )
    if on_nonfinite == "raise":
        raise BidsError(
            f"{source}: {what}; to mark them as bad segments instead, set config "
            "data_checks.nonfinite: bad_segment (on_nonfinite='annotate')"
        )
    # runs of bad time samples -> annotations
    edges = np.diff(np.concatenate([[0], bad_t.view(np.int8), [0]]))
    run_on = np.flatnonzero(edges == 1)
    run_off = np.flatnonzero(edges == -1)
    ann = Annotations(
        run_on / sfreq, (run_off - run_on) / sfreq, (NONFINITE_DESCRIPTION,) * run_on.size
    )
    idx = np.arange(data.shape[1])
    for c in chans:  # only the affected channels
        ok = ~bad[c]
        data[c, ~ok] = np.interp(idx[~ok], idx[ok], data[c, ok]) if ok.any() else 0.0
    msg = f"{source}: {what}; marked as {run_on.size} {NONFINITE_DESCRIPTION} segment(s)"
    return data, ann, msg


def find_bad_channels(
    data: np.ndarray,
    ch_names,
    ch_types=None,
    flat_std: float = 1e-10,
    max_ptp: float = 20e-3,
    full_scale: np.ndarray | None = None,
    max_full_scale_fraction: float = 0.95,
) -> list[tuple[str, str]]:
    """Channels that look flat or implausible (to be marked bad by the caller).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples in volts (V).
    ch_names : sequence of str, length n_channels
    ch_types : sequence of str | None
        Channel types; when given, only :data:`VOLTAGE_TYPES` channels are
        checked for amplitude (a stim channel's numbers are not volts), while
        every channel is checked for flatness.
    flat_std : float
        A channel whose standard deviation (V) is below this (or exactly zero) is
        ``"flat"``.
    max_ptp : float
        A channel whose peak-to-peak (V) exceeds this is implausible (default
        20 mV; DC-coupled recordings with large offsets or drifts may need more).
    full_scale : ndarray, shape (n_channels, 2) | None
        Lowest and highest value (V) the file format can represent per channel
        (integer formats). A channel spanning more than
        ``max_full_scale_fraction`` of that range is reported (saturation, or
        numbers that are not in the declared format).
    max_full_scale_fraction : float
        See ``full_scale``.

    Returns
    -------
    suspects : list of (str, str)
        ``(channel, reason)``, reasons starting with ``"flat"``, ``"implausible
        amplitude"`` or ``"full scale"``, in channel order.
    """
    data = np.asarray(data)
    n_ch = data.shape[0]
    if data.shape[1] == 0:
        return []
    std = _row_std(data)
    ptp = np.ptp(data, axis=1)
    volt = np.ones(n_ch, dtype=bool)
    if ch_types is not None:
        volt = np.array([t in VOLTAGE_TYPES for t in ch_types], dtype=bool)
    flat = ~(std >= flat_std)  # also catches NaN
    big = volt & ~flat & (ptp > max_ptp)
    span = np.zeros(n_ch, dtype=bool)
    frac = np.zeros(n_ch)
    if full_scale is not None:
        fs = np.asarray(full_scale, dtype=float).reshape(n_ch, 2)
        width = np.abs(fs[:, 1] - fs[:, 0])
        frac = np.divide(ptp, width, out=np.zeros(n_ch), where=width > 0)
        span = volt & ~flat & (frac > max_full_scale_fraction)
    out: list[tuple[str, str]] = []
    for i in np.flatnonzero(flat | big | span):
        name = ch_names[i]
        if flat[i]:
            out.append((name, f"flat (standard deviation {std[i]:.3g} V < {flat_std:.3g} V)"))
            continue
        if big[i]:
            out.append(
                (
                    name,
                    f"implausible amplitude (peak-to-peak {ptp[i] * 1e3:.4g} mV > "
                    f"{max_ptp * 1e3:.4g} mV)",
                )
            )
        if span[i]:
            out.append(
                (
                    name,
                    f"full scale (spans {100 * frac[i]:.0f}% of the representable range: "
                    "saturated, or the numbers are not in the declared format)",
                )
            )
    return out


def _row_std(data: np.ndarray, block_bytes: int = 64 * 2**20) -> np.ndarray:
    """Standard deviation of each row, in blocks of rows (bounded temporary memory)."""
    n_ch, n_t = data.shape
    step = max(1, block_bytes // max(8 * n_t, 1))
    out = np.empty(n_ch)
    for r0 in range(0, n_ch, step):  # a few blocks of rows, each vectorised
        out[r0 : r0 + step] = data[r0 : r0 + step].std(axis=1)
    return out


def check_data_size(
    path: str | Path,
    size: int,
    expected: int,
    what: str,
    allow_short: bool = False,
) -> int:
    """Compare a data file's byte count with what its header declares.

    Parameters
    ----------
    path : str | Path
        The data file, named in the error.
    size : int
        Actual size (bytes).
    expected : int
        Size (bytes) implied by the header.
    what : str
        How the header got there (e.g. ``"2 channels x 1000 samples x INT_16
        (2 bytes)"``), quoted in the error.
    allow_short : bool
        A shorter file is a truncation the caller handles (returns the shortfall)
        rather than an error.

    Returns
    -------
    missing : int
        Bytes missing (0 when the size matches; > 0 only with ``allow_short``).

    Raises
    ------
    BidsError
        When the file is larger than declared (the header's format, channel count
        or length is wrong), or shorter without ``allow_short``.
    """
    if size == expected:
        return 0
    if size > expected:
        raise BidsError(
            f"{path}: data file has {size} bytes but the header declares {what} = "
            f"{expected} bytes (wrong data format, channel count or length in the header?)"
        )
    if not allow_short:
        raise BidsError(
            f"{path}: truncated data file ({size} bytes, the header declares {what} = "
            f"{expected} bytes)"
        )
    return expected - size
