"""Preprocessing of continuous EEG: filtering, re-referencing, epochs, evokeds, noise covariance.

Everything here is numpy/scipy only and works on arrays in volts. The containers
(:class:`~exgsrc.containers.Raw`, :class:`~exgsrc.containers.Epochs`,
:class:`~exgsrc.containers.Evoked`, in :mod:`exgsrc.containers`) are frozen
dataclasses; every step returns a new object.

Filter design
-------------
:func:`filter_data` follows MNE-Python's default FIR design (``method='fir'``,
``phase='zero'``, ``fir_window='hamming'``, ``fir_design='firwin'``,
``l_trans_bandwidth='auto'``, ``h_trans_bandwidth='auto'``,
``filter_length='auto'``):

* transition bandwidths: low ``min(max(0.25 * l_freq, 2), l_freq)`` Hz, high
  ``min(max(0.25 * h_freq, 2), sfreq / 2 - h_freq)`` Hz;
* length: ``3.3 / min(transition bandwidths)`` seconds (the Hamming window's
  length factor), rounded up to an odd number of samples;
* taps: a sum of Hamming-windowed sinc low-pass filters (:func:`hamming_lowpass`,
  bit for bit :func:`scipy.signal.firwin`), one per transition band with its own length
  ``round(3.3 * sfreq / width)``, cut-off in the middle of the band
  (``l_freq - l_trans / 2``, ``h_freq + h_trans / 2``: the -6 dB points, so that
  the pass band is untouched), centred in the full-length filter;
* zero phase: the (linear-phase, symmetric) filter is applied once and the
  output is shifted back by its group delay ``(N - 1) / 2``; the signal edges
  are padded by reflection (``pad='reflect_limited'``) so that edge effects
  match MNE's;
* the convolution is an FFT overlap-add, one channel at a time, in batches of
  power-of-two blocks small enough to stay in cache (peak memory: one extra copy
  of the recording).

The result equals ``mne.filter.filter_data(data, sfreq, l_freq, h_freq)`` to
machine precision (tested). Band-stop designs are not offered.

Resampling (:func:`resample`) likewise follows MNE's default FFT method.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._system import thread_budget
from .annotations import BAD_PREFIXES, annotation_overlaps
from .containers import Epochs, Evoked, Raw

__all__ = [
    "filter_data",
    "design_fir_filter",
    "filter_raw",
    "resample",
    "set_average_reference",
    "make_epochs",
    "average",
    "combine_evoked",
    "baseline_covariance",
]


# --------------------------------------------------------------------------------------
# Filtering (MNE-Python's default FIR design, see module docstring)
# --------------------------------------------------------------------------------------


def _auto_trans(l_freq, h_freq, sfreq):
    l_trans = h_trans = None
    if l_freq is not None:
        l_trans = min(max(l_freq * 0.25, 2.0), l_freq)
    if h_freq is not None:
        h_trans = min(max(h_freq * 0.25, 2.0), sfreq / 2.0 - h_freq)
    return l_trans, h_trans


def hamming_lowpass(n_taps: int, cutoff: float, sfreq: float) -> np.ndarray:
    """Windowed-sinc low-pass taps, unit gain at 0 Hz (``scipy.signal.firwin``'s design).

    Equal bit for bit to ``firwin(n_taps, cutoff, window="hamming", fs=sfreq)``
    (same operations in the same order), without importing ``scipy.signal``,
    whose import costs about 1 s of CPU in every job that filters.

    Parameters
    ----------
    n_taps : int
        Number of taps (odd for a zero-phase, type I filter).
    cutoff : float
        Cut-off frequency (Hz), the -6 dB point, in (0, sfreq / 2).
    sfreq : float
        Sampling frequency (Hz).

    Returns
    -------
    h : ndarray, shape (n_taps,)
        Symmetric taps summing to 1.
    """
    right = np.float64(cutoff) / float(0.5 * sfreq)  # cut-off in units of Nyquist
    m = np.arange(0, n_taps, dtype=np.float64) - 0.5 * (n_taps - 1)
    h = right * np.sinc(right * m)
    if n_taps > 1:  # symmetric Hamming window as scipy's general_cosine builds it
        angle = np.linspace(-np.pi, np.pi, n_taps, dtype=np.float64)
        window = np.zeros(n_taps, dtype=np.float64)
        for k, a_k in enumerate((0.54, 1.0 - 0.54)):
            window += a_k * np.cos(k * angle)
        h *= window
    return h / np.sum(h)


def design_fir_filter(
    sfreq: float,
    l_freq: float | None,
    h_freq: float | None,
    l_trans_bandwidth: float | str = "auto",
    h_trans_bandwidth: float | str = "auto",
    filter_length: int | str = "auto",
) -> np.ndarray:
    """Design the zero-phase FIR low-pass, high-pass or band-pass taps (MNE's firwin design).

    Parameters
    ----------
    sfreq : float
        Sampling frequency (Hz).
    l_freq, h_freq : float | None
        Pass-band edges (Hz). ``l_freq`` only: high-pass; ``h_freq`` only:
        low-pass; both (``l_freq < h_freq``): band-pass.
    l_trans_bandwidth, h_trans_bandwidth : float | "auto"
        Transition band widths (Hz); ``"auto"`` follows MNE's rule (module docstring).
    filter_length : int | "auto"
        Number of taps; ``"auto"`` = ``ceil(3.3 / min_trans * sfreq)`` made odd.

    Returns
    -------
    h : ndarray, shape (n_taps,)
        Symmetric filter taps (odd length).

    Notes
    -----
    The response is built as a sum of windowed-sinc low-pass filters, one per
    transition band, each with its own length ``round(3.3 * sfreq / width)``
    (odd) so that every transition gets the width asked for, centred inside the
    full-length filter: a band-pass is ``LP(h_freq + h_trans/2) - LP(l_freq -
    l_trans/2)``, a high-pass ``delta - LP(l_freq - l_trans/2)``. This is the
    construction ``mne.filter.create_filter`` uses for ``fir_design='firwin'``.
    """
    nyq = sfreq / 2.0
    if l_freq is None and h_freq is None:
        raise ValueError("filter: at least one of l_freq and h_freq must be given")
    if l_freq is not None and not 0 < l_freq < nyq:
        raise ValueError(f"filter: l_freq={l_freq} Hz must be in (0, Nyquist={nyq}) Hz")
    if h_freq is not None and not 0 < h_freq < nyq:
        raise ValueError(f"filter: h_freq={h_freq} Hz must be in (0, Nyquist={nyq}) Hz")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise ValueError(
            f"filter: l_freq={l_freq} >= h_freq={h_freq}; band-stop filters are not supported"
        )
    auto_l, auto_h = _auto_trans(l_freq, h_freq, sfreq)
    l_trans = auto_l if l_trans_bandwidth == "auto" else float(l_trans_bandwidth)
    h_trans = auto_h if h_trans_bandwidth == "auto" else float(h_trans_bandwidth)
    trans = []  # (lower edge, upper edge, gain below the transition)
    if h_freq is not None:
        if not h_trans > 0 or h_freq + h_trans > nyq + 1e-12:
            raise ValueError(f"filter: h_trans_bandwidth={h_trans} Hz invalid for h_freq={h_freq}")
        trans.append((h_freq, h_freq + h_trans, 1))
    if l_freq is not None:
        if not l_trans > 0 or l_freq - l_trans < -1e-12:
            raise ValueError(f"filter: l_trans_bandwidth={l_trans} Hz invalid for l_freq={l_freq}")
        trans.append((l_freq - l_trans, l_freq, 0))
    if filter_length == "auto":
        n = max(int(np.ceil(3.3 / min(t[1] - t[0] for t in trans) * sfreq)), 1)
    else:
        n = int(filter_length)
    n += (n - 1) % 2  # odd length -> type I linear phase, integer group delay
    h = np.zeros(n)
    if h_freq is None:  # high-pass: all-pass minus a low-pass
        h[n // 2] = 1.0
    for lo, hi, gain_below in trans:
        n_i = int(round(3.3 * sfreq / (hi - lo)))
        n_i += 1 - n_i % 2
        if n_i > n:
            raise ValueError(
                f"filter: filter_length={n} is too short for the {hi - lo:.2f} Hz transition "
                f"band, which needs {n_i} samples"
            )
        lp = hamming_lowpass(n_i, (lo + hi) / 2.0, sfreq)
        off = (n - n_i) // 2
        if gain_below == 1:
            h[off : n - off] += lp
        else:
            h[off : n - off] -= lp
    return h


def filter_data(
    data: np.ndarray,
    sfreq: float,
    l_freq: float | None,
    h_freq: float | None,
    l_trans_bandwidth: float | str = "auto",
    h_trans_bandwidth: float | str = "auto",
    filter_length: int | str = "auto",
) -> np.ndarray:
    """Zero-phase FIR filter along the last axis (MNE-Python's default design).

    Parameters
    ----------
    data : ndarray, shape (..., n_times)
        Signals (any unit; returned in the same unit).
    sfreq : float
        Sampling frequency (Hz).
    l_freq, h_freq : float | None
        Pass band (Hz); see :func:`design_fir_filter`. ``None`` for both returns a copy.
    l_trans_bandwidth, h_trans_bandwidth, filter_length
        See :func:`design_fir_filter`.

    Returns
    -------
    out : ndarray, shape (..., n_times)
        Filtered float64 copy.

    Notes
    -----
    The signal is padded at both ends by ``reflect_limited`` padding (odd
    reflection about the edge sample, ``n_taps - 1`` samples, zeros beyond the
    signal length), convolved with the taps by FFT and cropped to remove the group
    delay, which reproduces ``mne.filter.filter_data(..., method='fir',
    phase='zero', fir_design='firwin')``.
    """
    x = np.asarray(data, dtype=np.float64)
    if l_freq is None and h_freq is None:
        return x.copy()
    h = design_fir_filter(
        sfreq, l_freq, h_freq, l_trans_bandwidth, h_trans_bandwidth, filter_length
    )
    shape = x.shape
    out = np.array(x.reshape(-1, shape[-1]), dtype=np.float64, copy=True)
    _filter_rows_inplace(out, np.arange(out.shape[0]), h)
    return out.reshape(shape)


def _filter_rows_inplace(x: np.ndarray, rows: np.ndarray, h: np.ndarray) -> None:
    """Zero-phase filter ``x[rows]`` in place, one row at a time (bounded memory).

    The padded row, the FFT blocks and the convolution output live in buffers
    allocated once for all rows: on long recordings, allocating (and first
    touching) fresh arrays per row costs more than the FFTs.
    """
    n_x = x.shape[1]
    n_pad = max(min(h.size, n_x) - 1, 0)
    start = n_pad + (h.size - 1) // 2  # undo padding and the group delay
    conv = _OverlapAdd(h, n_x + 2 * n_pad)
    padded = np.empty((1, n_x + 2 * n_pad))
    for r in rows:
        _reflect_limited_pad(x[r : r + 1], n_pad, out=padded)
        x[r] = conv(padded[0])[start : start + n_x]


class _OverlapAdd:
    """Full linear convolution with fixed taps ``h`` by FFT overlap-add, buffers reused.

    Parameters
    ----------
    h : ndarray, shape (n_h,)
        Filter taps.
    n : int
        Length of the signals that will be convolved.
    """

    def __init__(self, h: np.ndarray, n: int):
        from scipy import fft

        self.n, self.n_h = int(n), h.size
        # block length: the power of two minimising the FFT work per output sample
        k0 = int(np.ceil(np.log2(2 * self.n_h - 1)))
        k1 = max(k0, int(np.ceil(np.log2(self.n + self.n_h - 1))))
        cands = 2 ** np.arange(k0, k1 + 1)
        cost = np.ceil(self.n / (cands - self.n_h + 1)) * cands * (np.log2(cands) + 1)
        self.n_fft = int(cands[np.argmin(cost)])
        self.seg = self.n_fft - self.n_h + 1
        self.n_seg = -(-self.n // self.seg)
        self.H = fft.rfft(h, self.n_fft)
        self.out = np.empty((self.n_seg + 1) * self.seg)
        # ~8 MB of blocks per FFT call: stays in cache
        self.batch = max(1, min(self.n_seg, int(2**20 // self.n_fft)))
        self.blocks = np.zeros((self.batch, self.n_fft))
        # the FFTs of a batch of blocks run on every core the job may use (pocketfft
        # threads split the batch; each transform is computed exactly as on one thread)
        self.workers = thread_budget()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Convolve one signal ``x (n,)``; returns a view ``(n + n_h - 1,)`` of the buffer."""
        from scipy import fft

        n, seg, n_seg = self.n, self.seg, self.n_seg
        tail = self.n_fft - seg  # = n_h - 1 <= seg because n_fft >= 2 n_h - 1
        self.out[:] = 0.0
        view = self.out.reshape(n_seg + 1, seg)
        for b0 in range(0, n_seg, self.batch):
            nb = min(self.batch, n_seg - b0)
            lo, hi = b0 * seg, min((b0 + nb) * seg, n)
            blk = self.blocks[:nb]
            blk[:, seg:] = 0.0
            flat = blk[:, :seg]
            n_full = (hi - lo) // seg
            flat[:n_full] = x[lo : lo + n_full * seg].reshape(n_full, seg)
            if n_full < nb:
                flat[n_full] = 0.0
                flat[n_full, : hi - lo - n_full * seg] = x[lo + n_full * seg : hi]
            spec = fft.rfft(blk, axis=-1, workers=self.workers)
            spec *= self.H
            y = fft.irfft(spec, self.n_fft, axis=-1, workers=self.workers)
            view[b0 : b0 + nb] += y[:, :seg]
            view[b0 + 1 : b0 + nb + 1, :tail] += y[:, seg:]
        return self.out[: n + self.n_h - 1]


def _reflect_limited_pad(x: np.ndarray, n_pad, out: np.ndarray | None = None) -> np.ndarray:
    """Odd reflection about the edge samples (``2 * x[0] - x[k]``), zero-filled past the data.

    ``n_pad`` is one int (both sides) or a pair (left, right); ``out`` an optional
    preallocated ``(n_rows, n_left + n + n_right)`` array to write into.
    """
    n_left, n_right = (n_pad, n_pad) if np.isscalar(n_pad) else n_pad
    n_rows, n_x = x.shape
    if out is None:
        out = np.empty((n_rows, n_left + n_x + n_right))
    out[:, :n_left] = 0.0
    out[:, n_left + n_x :] = 0.0
    out[:, n_left : n_left + n_x] = x
    k = min(n_left, n_x - 1)
    if k > 0:
        out[:, n_left - k : n_left] = 2 * x[:, :1] - x[:, k:0:-1]
    k = min(n_right, n_x - 1)
    if k > 0:
        out[:, n_left + n_x : n_left + n_x + k] = 2 * x[:, -1:] - x[:, -2 : -2 - k : -1]
    return out


def filter_raw(
    raw: Raw,
    l_freq: float | None,
    h_freq: float | None,
    ch_types: tuple[str, ...] = ("eeg", "seeg", "ecog", "dbs"),
    copy: bool = True,
    **kwargs,
) -> Raw:
    """Filter the channels of ``raw`` with :func:`filter_data`; returns a new Raw.

    Parameters
    ----------
    raw : Raw
    l_freq, h_freq : float | None
        Pass band (Hz).
    ch_types : tuple of str
        Channel types to filter. The default filters only data channels (EOG,
        ECG, stim... stay untouched), as ``mne.io.Raw.filter`` does by default.
    copy : bool
        False filters ``raw.data`` in place (float64 data only) and the returned
        Raw shares it: no second copy of a long recording in memory, as
        ``mne.io.Raw.filter`` works.
    **kwargs
        Passed to :func:`filter_data`.

    Returns
    -------
    Raw
        With ``meta["filter"]`` describing the design.
    """
    idx = np.asarray([i for i, t in enumerate(raw.ch_types) if t in ch_types], dtype=int)
    if copy or raw.data.dtype != np.float64:
        out = np.array(raw.data, dtype=np.float64, copy=True)
    else:
        out = raw.data
    if idx.size and (l_freq is not None or h_freq is not None):
        h = design_fir_filter(raw.sfreq, l_freq, h_freq, **kwargs)
        _filter_rows_inplace(out, idx, h)
    meta = dict(raw.meta)
    meta["filter"] = {
        "l_freq": l_freq,
        "h_freq": h_freq,
        "design": "FIR, firwin, hamming, zero-phase (MNE default)",
        "ch_types": list(ch_types),
        **{k: v for k, v in kwargs.items()},
    }
    return replace(raw, data=out, meta=meta)


def resample(raw: Raw, sfreq: float, method: str = "fft") -> Raw:
    """Resample to ``sfreq``.

    Parameters
    ----------
    raw : Raw
    sfreq : float
        New sampling frequency (Hz).
    method : {"fft", "polyphase"}
        ``"fft"`` (default) follows MNE-Python's default (``npad="auto"``, boxcar
        window, ``reflect_limited`` edge padding): each channel is padded to a
        power-of-two length, its spectrum truncated (or zero-extended) to the new
        length, and the padding removed. ``"polyphase"`` uses
        :func:`scipy.signal.resample_poly` (Kaiser-windowed FIR); the ratio must then
        be a simple fraction.

    Returns
    -------
    Raw
        ``n_times = round(n_times * sfreq / raw.sfreq)``; ``meta["resampled_from"]``
        records the original rate. Event samples must be rescaled by
        ``sfreq / raw.sfreq`` (and rounded).
    """
    if not sfreq > 0:
        raise ValueError(f"resample: sfreq must be positive, got {sfreq}")
    ratio = float(sfreq) / float(raw.sfreq)
    x = np.asarray(raw.data, dtype=np.float64)
    n = x.shape[1]
    final_len = max(int(round(ratio * n)), 1)
    if method == "fft":
        data = _resample_fft(x, ratio, final_len)
    elif method == "polyphase":
        from fractions import Fraction

        from scipy.signal import resample_poly

        frac = Fraction(ratio).limit_denominator(1000)
        if abs(frac.numerator / frac.denominator - ratio) > 1e-9 * ratio:
            raise ValueError(f"resample: ratio {sfreq}/{raw.sfreq} is not a simple fraction")
        data = resample_poly(x, frac.numerator, frac.denominator, axis=-1)
    else:
        raise ValueError(f"resample: method must be 'fft' or 'polyphase', got {method!r}")
    meta = dict(raw.meta)
    meta["resampled_from"] = raw.sfreq
    return replace(raw, data=data, sfreq=float(sfreq), meta=meta)


def _resample_fft(x: np.ndarray, ratio: float, final_len: int) -> np.ndarray:
    """FFT resampling of each row (see :func:`resample`), shape (n_rows, final_len)."""
    from scipy import fft

    n = x.shape[1]
    min_add = min(n // 8, 100) * 2
    total = 2 ** int(np.ceil(np.log2(n + min_add))) - n
    pad0, extra = divmod(total, 2)
    pad1 = pad0 + extra
    orig_len = n + pad0 + pad1
    new_len = max(int(round(ratio * orig_len)), 1)
    rm0 = int(round(ratio * pad0))
    rm1 = new_len - final_len - rm0
    shorter = new_len < orig_len
    use_len = new_len if shorter else orig_len
    out = np.empty((x.shape[0], final_len))
    for r in range(x.shape[0]):
        xp = _reflect_limited_pad(x[r : r + 1], (pad0, pad1))[0]
        spec = fft.rfft(xp)
        if use_len % 2 == 0:
            spec[use_len // 2] *= 2.0 if shorter else 0.5
        spec *= new_len / orig_len
        y = fft.irfft(spec, new_len)
        out[r] = y[rm0 : new_len - rm1]
    return out


def set_average_reference(raw: Raw) -> Raw:
    """Re-reference EEG channels to their average (good EEG channels only).

    The mean over good EEG channels (shape (n_times,)) is subtracted from every
    good EEG channel; bad channels and other channel types are left untouched
    (as ``mne.set_eeg_reference("average")``).

    Parameters
    ----------
    raw : Raw

    Returns
    -------
    Raw
        New object with ``meta["reference"] = "average"``.
    """
    good = raw.picks("eeg", exclude_bads=True)
    if good.size == 0:
        raise ValueError("set_average_reference: no good EEG channel")
    data = np.array(raw.data, dtype=np.float64, copy=True)
    data[good] -= data[good].mean(axis=0, keepdims=True)
    meta = dict(raw.meta)
    meta["reference"] = "average"
    return replace(raw, data=data, meta=meta)


def _sample_window(times: np.ndarray, sfreq: float, tmin, tmax) -> np.ndarray:
    """Boolean mask of samples nearest to [tmin, tmax] (inclusive); None means the edge."""
    idx = np.round(times * sfreq).astype(int)
    lo = idx[0] if tmin is None else int(round(tmin * sfreq))
    hi = idx[-1] if tmax is None else int(round(tmax * sfreq))
    return (idx >= lo) & (idx <= hi)


def make_epochs(
    raw: Raw,
    events,
    event_labels,
    tmin: float,
    tmax: float,
    baseline: tuple[float | None, float | None] | None = (None, 0.0),
    reject: dict | float | None = None,
    conditions=None,
    flat: dict | float | None = None,
    reject_by_annotation: bool | tuple[str, ...] = True,
) -> Epochs:
    """Cut epochs around events, baseline-correct them and reject by peak-to-peak.

    Parameters
    ----------
    raw : Raw
        Continuous data (V).
    events : array-like of int, shape (n_events,)
        Event onsets as sample indices into ``raw.data`` (0 = first sample).
    event_labels : sequence of str, length n_events
        Condition label of each event.
    tmin, tmax : float
        Epoch window relative to each event (s); both ends included, rounded to the
        nearest sample (``n_times = round(tmax*sfreq) - round(tmin*sfreq) + 1``).
    baseline : (float | None, float | None) | None
        Interval (s) whose per-channel mean is subtracted; ``None`` edges mean the
        start/end of the epoch. ``None`` disables baseline correction.
    reject : dict | float | None
        Peak-to-peak thresholds in volts per channel type, e.g. ``{"eeg": 100e-6}``
        (a float applies to EEG). An epoch is dropped when any good channel of a
        listed type exceeds its threshold (strictly greater); bad channels are ignored.
    conditions : sequence of str | None
        Keep only events with these labels (``None``: all).
    flat : dict | float | None
        Minimum peak-to-peak (V) per channel type: an epoch is dropped when a good
        channel of a listed type is flatter (strictly smaller), as MNE's ``flat``.
    reject_by_annotation : bool | tuple of str
        True: drop epochs that overlap an annotation of ``raw.annotations`` whose
        description starts with ``"bad"`` (case-insensitive), exactly as
        ``mne.Epochs(..., reject_by_annotation=True)`` (see
        :mod:`exgsrc.annotations` for the overlap rule); the drop-log reason is the
        annotation's description. A tuple of prefixes instead (e.g.
        :data:`exgsrc.annotations.DISCONTINUITIES`, which adds ``boundary``,
        ``edge`` and ``New Segment``). False: ignore annotations.

    Returns
    -------
    Epochs
        With ``drop_log`` (one entry per event given, after condition selection)
        and ``meta["drop_details"]`` listing event index, sample, label, reason and
        peak-to-peak value of each dropped epoch.
    """
    events = np.asarray(events)
    if events.ndim != 1:
        raise ValueError(f"make_epochs: events must be 1-D sample indices, got {events.shape}")
    if not np.all(np.isfinite(events)) or np.any(events != np.round(events)):
        raise ValueError("make_epochs: events must be integer sample indices")
    events = events.astype(np.int64)
    labels = [str(x) for x in event_labels]
    if len(labels) != events.size:
        raise ValueError(
            f"make_epochs: {events.size} events but {len(labels)} labels (event_labels)"
        )
    if conditions is not None:
        conditions = [str(c) for c in conditions]
        keep = np.array([lab in conditions for lab in labels], dtype=bool)
        events = events[keep]
        labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
    if tmax < tmin:
        raise ValueError(f"make_epochs: tmax={tmax} < tmin={tmin}")
    sfreq = raw.sfreq
    i0 = int(round(tmin * sfreq))
    i1 = int(round(tmax * sfreq))
    times = np.arange(i0, i1 + 1) / sfreq
    n_t = times.size

    def _thresholds(value, name):
        if isinstance(value, int | float):
            value = {"eeg": float(value)}
        value = dict(value or {})
        for k, v in value.items():
            if not (np.isscalar(v) and v > 0):
                raise ValueError(f"make_epochs: {name}[{k!r}]={v!r} must be a positive number (V)")
        return value

    reject = _thresholds(reject, "reject")
    flat = _thresholds(flat, "flat")

    starts = events + i0
    n_data = raw.n_times
    drop_log: list[tuple[str, ...]] = []
    details: list[dict] = []
    ann_reason = _annotation_reasons(raw, starts, n_t, reject_by_annotation)
    by_ann = np.array([r is not None for r in ann_reason], dtype=bool) & (starts >= 0)
    in_bounds = (starts >= 0) & (starts + n_t <= n_data) & ~by_ann
    ok_idx = np.flatnonzero(in_bounds)
    # gather all in-bound epochs at once: (n_ok, n_ch, n_t)
    src = raw.data
    data = np.empty((ok_idx.size, src.shape[0], n_t), dtype=np.float64)
    for k, st in enumerate(starts[ok_idx]):  # one contiguous block copy per epoch
        data[k] = src[:, st : st + n_t]

    if baseline is not None:
        bmin, bmax = baseline
        if bmin is not None and bmin < times[0] - 0.5 / sfreq:
            raise ValueError(f"make_epochs: baseline start {bmin} s is before tmin={tmin} s")
        if bmax is not None and bmax > times[-1] + 0.5 / sfreq:
            raise ValueError(f"make_epochs: baseline end {bmax} s is after tmax={tmax} s")
        mask = _sample_window(times, sfreq, bmin, bmax)
        if not mask.any():
            raise ValueError(f"make_epochs: baseline {baseline} contains no sample")
        data -= data[:, :, mask].mean(axis=-1, keepdims=True)
        baseline = (float(times[mask][0]), float(times[mask][-1]))

    bad_ep = np.zeros(ok_idx.size, dtype=bool)
    reasons: dict[int, list[str]] = {}
    ptp_vals: dict[int, dict[str, float]] = {}
    kinds: dict[int, list[str]] = {}
    if (reject or flat) and ok_idx.size:
        ptp = np.ptp(data, axis=-1)  # (n_ok, n_ch)
        for kind, table in (("peak-to-peak", reject), ("flat", flat)):
            for ch_type, thr in table.items():
                picks = raw.picks(ch_type, exclude_bads=True)
                if picks.size == 0:
                    continue
                hit = ptp[:, picks] > thr if kind == "peak-to-peak" else ptp[:, picks] < thr
                for e in np.flatnonzero(hit.any(axis=1)):
                    e = int(e)
                    bad_ep[e] = True
                    cols = picks[np.flatnonzero(hit[e])]
                    reasons.setdefault(e, []).extend(raw.ch_names[c] for c in cols)
                    kinds.setdefault(e, []).append(kind)
                    ptp_vals.setdefault(e, {}).update(
                        {raw.ch_names[c]: float(ptp[e, c]) for c in cols}
                    )

    pos_in_ok = {int(k): j for j, k in enumerate(ok_idx)}
    for i in range(events.size):
        if i not in pos_in_ok and by_ann[i]:
            drop_log.append((ann_reason[i],))
            details.append(
                dict(
                    index=i,
                    sample=int(events[i]),
                    label=labels[i],
                    reason="annotation",
                    detail=f"window [{tmin}, {tmax}] s overlaps annotation {ann_reason[i]!r}",
                )
            )
            continue
        if i not in pos_in_ok:
            reason = "NO_DATA" if starts[i] < 0 else "TOO_SHORT"
            drop_log.append((reason,))
            details.append(
                dict(
                    index=i,
                    sample=int(events[i]),
                    label=labels[i],
                    reason=reason,
                    detail=f"window [{tmin}, {tmax}] s outside the recording",
                )
            )
            continue
        j = pos_in_ok[i]
        if bad_ep[j]:
            drop_log.append(tuple(reasons[j]))
            kind = "/".join(dict.fromkeys(kinds[j]))
            if "peak-to-peak" in kind:
                worst = max(ptp_vals[j].items(), key=lambda kv: kv[1])
                text = f"peak-to-peak {worst[1]:.3g} V on {worst[0]} exceeds threshold"
            else:
                worst = min(ptp_vals[j].items(), key=lambda kv: kv[1])
                text = f"peak-to-peak {worst[1]:.3g} V on {worst[0]} below flat threshold"
            details.append(
                dict(
                    index=i,
                    sample=int(events[i]),
                    label=labels[i],
                    reason=kind,
                    channels=list(reasons[j]),
                    detail=text,
                )
            )
        else:
            drop_log.append(())
    keep_ok = ~bad_ep
    selection = ok_idx[keep_ok]
    if bad_ep.any():
        # compact in place (one block move per kept epoch) rather than data[keep_ok],
        # which would hold a second copy of all epochs at once
        for dst, src_i in enumerate(np.flatnonzero(keep_ok)):
            if dst != src_i:
                data[dst] = data[src_i]
        data = data[: selection.size]
    warnings: list[str] = []
    for cond in dict.fromkeys(labels):
        n_tot = sum(lab == cond for lab in labels)
        n_kept = sum(labels[i] == cond for i in selection)
        if n_kept == 0:
            warnings.append(f"condition {cond!r}: all {n_tot} epochs were rejected")
    return Epochs(
        data=data,
        times=times,
        labels=tuple(labels[i] for i in selection),
        ch_names=raw.ch_names,
        ch_types=raw.ch_types,
        bads=raw.bads,
        sfreq=sfreq,
        events=events[selection],
        selection=selection,
        drop_log=tuple(drop_log),
        baseline=baseline,
        meta={
            "drop_details": details,
            "warnings": warnings,
            "reject": reject,
            "flat": flat,
            "n_events": int(events.size),
            "source": raw.meta.get("source"),
            "reject_by_annotation": reject_by_annotation,
        },
    )


def _annotation_reasons(raw: Raw, starts, n_t: int, reject_by_annotation) -> list:
    """Description of the first rejecting annotation overlapping each epoch, or None."""
    if reject_by_annotation is False or reject_by_annotation is None:
        return [None] * len(starts)
    if reject_by_annotation is True:
        prefixes = BAD_PREFIXES
    elif isinstance(reject_by_annotation, str):
        prefixes = (reject_by_annotation,)
    else:
        prefixes = tuple(str(p) for p in reject_by_annotation)
        if not prefixes:
            raise ValueError("make_epochs: reject_by_annotation is an empty tuple")
    ann = getattr(raw, "annotations", None)
    if ann is None or not len(ann):
        return [None] * len(starts)
    return annotation_overlaps(ann, starts, n_t, raw.sfreq, prefixes)


def average(epochs: Epochs, condition: str | None = None, codes=None) -> Evoked:
    """Average the kept epochs of one condition.

    Parameters
    ----------
    epochs : Epochs
    condition : str | None
        Label to average; ``None`` averages all kept epochs (condition ``"all"``
        unless there is only one label).
    codes : sequence of str | None
        Epoch labels (event codes) that make ``condition`` when it merges several
        (see :func:`exgsrc.io.events.resolve_conditions`); None: ``[condition]``.

    Returns
    -------
    Evoked
        ``data`` shape (n_channels, n_times) in V, ``nave`` = number of epochs,
        ``condition`` = ``condition``.

    Raises
    ------
    ValueError
        If the condition is absent or all its epochs were rejected (message says which).
    """
    labels = np.asarray(epochs.labels, dtype=object)
    if condition is None:
        sel = np.ones(labels.size, dtype=bool)
        conds = epochs.conditions
        name = conds[0] if len(conds) == 1 else "all"
    else:
        codes = [condition] if codes is None else [str(c) for c in codes]
        sel = np.isin(labels, np.asarray(codes, dtype=object))
        name = condition
    n = int(sel.sum())
    if n == 0:
        what = f"condition {condition!r}" + (
            "" if codes == [condition] else f" (event codes {codes})"
        )
        dl = epochs.drop_log
        n_dropped = sum(1 for d in epochs.meta.get("drop_details", []) if d.get("label") in codes)
        if n_dropped:
            raise ValueError(
                f"average: all {n_dropped} epochs of {what} were rejected "
                f"(see drop_log, {len(dl)} events)"
            )
        raise ValueError(
            f"average: {what} has no epochs (conditions present: {list(epochs.conditions)})"
        )
    data = epochs.data[sel].mean(axis=0)
    return Evoked(
        data=data,
        times=epochs.times.copy(),
        ch_names=epochs.ch_names,
        nave=n,
        condition=name,
        ch_types=epochs.ch_types,
        bads=epochs.bads,
        meta={"baseline": epochs.baseline, "source": epochs.meta.get("source")},
    )


def combine_evoked(evokeds, weights, condition: str | None = None) -> Evoked:
    """Weighted sum of evoked responses (a contrast), as ``mne.combine_evoked``.

    Parameters
    ----------
    evokeds : sequence of Evoked
        Same channels (names and order) and time axis.
    weights : sequence of float
        One per evoked: ``[1, -1]`` is the difference of the first and second.
    condition : str | None
        Name of the result; None: MNE's comment form (``"a - b"``).

    Returns
    -------
    Evoked
        ``data = sum(w_i * data_i)``; ``nave`` the effective number of averages
        ``1 / sum(w_i**2 / nave_i)`` (:func:`exgsrc.io.events.contrast_nave`; a
        float, as MNE's, used as is to scale the noise covariance in
        :func:`exgsrc.inverse.apply_inverse`); bad channels the union;
        ``meta["weights"]``, ``meta["naves"]``, ``meta["conditions"]`` of the parts.

    Raises
    ------
    ValueError
        No evoked, a weight count that differs, or channels / times that differ.
    """
    evokeds = list(evokeds)
    w = [float(x) for x in weights]
    if not evokeds or len(w) != len(evokeds):
        raise ValueError(f"combine_evoked: {len(evokeds)} evokeds but {len(w)} weights")
    ref = evokeds[0]
    for ev in evokeds[1:]:
        if tuple(ev.ch_names) != tuple(ref.ch_names):
            raise ValueError(
                f"combine_evoked: channels of {ev.condition!r} differ from {ref.condition!r}"
            )
        if ev.times.shape != ref.times.shape or not np.allclose(ev.times, ref.times):
            raise ValueError(
                f"combine_evoked: time axis of {ev.condition!r} differs from {ref.condition!r}"
            )
    naves = [ev.nave for ev in evokeds]
    data = sum(wi * ev.data for wi, ev in zip(w, evokeds, strict=True))
    if condition is None:  # MNE's comment: "a - b", "2.000 × a - 0.500 × b"
        terms = []
        for i, (wi, ev) in enumerate(zip(w, evokeds, strict=True)):
            sign = ("-" if wi < 0 else "") if i == 0 else (" - " if wi < 0 else " + ")
            mag = "" if np.isclose(abs(wi), 1.0) else f"{abs(wi):0.3f} × "
            name = f"({ev.condition})" if " + " in ev.condition else ev.condition
            terms.append(f"{sign}{mag}{name}")
        condition = "".join(terms).replace(" - - ", " + ")
    # the noise variance of sum(w_i * evoked_i) is sum(w_i**2 / nave_i) times one
    # epoch's (exgsrc.io.events.contrast_nave, MNE's formula; summed in order)
    if any(not (n > 0) for n in naves):
        raise ValueError(f"combine_evoked: numbers of averages must be positive, got {naves}")
    var = 0.0
    for wi, n in zip(w, naves, strict=True):
        var += wi**2 / float(n)
    if var == 0:
        raise ValueError("combine_evoked: all weights are zero")
    bads = tuple(dict.fromkeys(b for ev in evokeds for b in ev.bads))
    return Evoked(
        data=data,
        times=ref.times.copy(),
        ch_names=ref.ch_names,
        nave=1.0 / var,
        condition=condition,
        ch_types=ref.ch_types,
        bads=bads,
        meta={
            "weights": w,
            "naves": naves,
            "conditions": [ev.condition for ev in evokeds],
        },
    )


def baseline_covariance(
    epochs: Epochs | Raw,
    tmin: float | None = None,
    tmax: float | None = 0.0,
    method: str = "empirical",
    ch_type: str = "eeg",
    exclude_bads: bool = True,
    keep_sample_mean: bool = True,
    **kwargs,
):
    """Noise covariance from the pre-stimulus baseline of all kept epochs.

    Parameters
    ----------
    epochs : Epochs | Raw
        Kept epochs (V); a :class:`Raw` (a separate noise/rest recording) uses all
        of its samples, ignoring ``tmin``/``tmax``.
    tmin, tmax : float | None
        Window (s, relative to the event, nearest samples, inclusive); default from
        the epoch start to 0 s (as ``mne.compute_covariance(epochs, tmax=0)``).
    method : str
        Passed to :func:`exgsrc.covariance.compute_covariance_epochs`.
    ch_type : str
        Channel type to keep (default ``"eeg"``).
    exclude_bads : bool
        Drop bad channels.
    keep_sample_mean : bool
        Passed to the estimator (MNE's default for epochs is True); with False the
        per-condition mean is removed (epoch labels are passed along).
    **kwargs
        Further estimator options (``shrinkage``, ``rank``, ``cv``...).

    Returns
    -------
    NoiseCov
        ``data`` shape (n_channels, n_channels) in V².
    """
    from .covariance import compute_covariance, compute_covariance_epochs

    if isinstance(epochs, Raw):
        picks = epochs.picks(ch_type, exclude_bads)
        if picks.size == 0:
            raise ValueError(f"baseline_covariance: no good channel of type {ch_type!r}")
        names = [epochs.ch_names[i] for i in picks]
        return compute_covariance(epochs.data[picks], names, method=method, **kwargs)
    if epochs.n_epochs == 0:
        raise ValueError("baseline_covariance: no kept epoch (all rejected?)")
    picks = epochs.picks(ch_type, exclude_bads)
    if picks.size == 0:
        raise ValueError(f"baseline_covariance: no good channel of type {ch_type!r}")
    mask = _sample_window(epochs.times, epochs.sfreq, tmin, tmax)
    if not mask.any():
        raise ValueError(f"baseline_covariance: window [{tmin}, {tmax}] s contains no sample")
    x = epochs.data[:, picks][:, :, mask]
    names = [epochs.ch_names[i] for i in picks]
    if not keep_sample_mean:
        kwargs.setdefault("labels", list(epochs.labels))
    return compute_covariance_epochs(
        x, names, method=method, keep_sample_mean=keep_sample_mean, **kwargs
    )
