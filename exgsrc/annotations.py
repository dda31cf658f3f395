"""Annotated time segments of a continuous recording (bad segments, discontinuities).

An :class:`Annotations` holds ``(onset, duration, description)`` triples in
seconds from the first data sample. They come from the data file (EDF+
annotations, BrainVision markers, EEGLAB events), from ``events.tsv`` rows that
mark bad segments or boundaries, or from read-time checks (non-finite samples).

Epoch rejection (:func:`exgsrc.preprocessing.make_epochs` with
``reject_by_annotation=True``) follows MNE-Python's rule for
``mne.Epochs(..., reject_by_annotation=True)``: an epoch whose samples are
``start, ..., stop - 1`` (indices into the data) is dropped when an annotation
whose description starts with ``"bad"`` (case-insensitive) satisfies

    ``onset < stop / sfreq`` and ``onset + duration > start / sfreq``

(strict inequalities: an annotation that ends exactly at the epoch's first sample,
or begins one sample after its last, does not overlap; a zero-duration
annotation overlaps when it lies strictly inside ``(start, stop) / sfreq``). The
drop-log reason is the description of the first such annotation in onset order.
A NaN (unknown) duration counts as 0, as it does once MNE attaches annotations
to a raw (``Raw.set_annotations``).

MNE keeps EEGLAB ``boundary`` events (data discontinuities) and BrainVision
``New Segment`` markers as ordinary annotations: they do not start with "bad",
so MNE does not drop epochs across them. Pass
``reject_by_annotation=DISCONTINUITIES`` to drop those epochs as well;
``boundary`` annotations are then taken as points (duration 0), since EEGLAB
stores the length of the *removed* data as their duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Annotations",
    "BAD_PREFIXES",
    "DISCONTINUITIES",
    "is_bad_segment",
    "annotation_overlaps",
]

#: Description prefixes that MNE's ``reject_by_annotation=True`` rejects on.
BAD_PREFIXES: tuple[str, ...] = ("bad",)
#: ``BAD_PREFIXES`` plus MNE's ``EDGE`` markers, EEGLAB ``boundary`` events and
#: BrainVision ``New Segment`` markers (data discontinuities).
DISCONTINUITIES: tuple[str, ...] = ("bad", "edge", "boundary", "new segment")


@dataclass(frozen=True, eq=False)
class Annotations:
    """Time segments of a recording, sorted by onset.

    Parameters
    ----------
    onset : ndarray of float, shape (n_annotations,)
        Start (s) relative to the first data sample (not to ``Raw.first_time``).
    duration : ndarray of float, shape (n_annotations,)
        Length (s), >= 0; NaN when unknown (taken as 0 by the overlap rule).
    description : tuple of str, length n_annotations
        E.g. ``"BAD_ACQ_SKIP"``, ``"bad_muscle"``, ``"boundary"``, ``"Stimulus/S  1"``.
    """

    onset: np.ndarray = None
    duration: np.ndarray = None
    description: tuple[str, ...] = ()

    def __post_init__(self):
        on = np.asarray([] if self.onset is None else self.onset, dtype=np.float64).ravel()
        du = np.asarray([] if self.duration is None else self.duration, dtype=np.float64)
        du = np.broadcast_to(du.ravel() if du.ndim else du, on.shape).copy()
        desc = tuple(str(d) for d in self.description)
        if len(desc) != on.size:
            raise ValueError(
                f"Annotations: {on.size} onsets but {len(desc)} descriptions "
                f"and {du.size} durations"
            )
        if not np.all(np.isfinite(on)):
            raise ValueError("Annotations: onsets must be finite")
        if np.any(du < 0):
            raise ValueError("Annotations: durations must be >= 0 (s)")
        order = np.argsort(on, kind="stable")
        on, du = on[order], du[order]
        on.flags.writeable = False
        du.flags.writeable = False
        object.__setattr__(self, "onset", on)
        object.__setattr__(self, "duration", du)
        object.__setattr__(self, "description", tuple(desc[i] for i in order))

    def __len__(self) -> int:
        return len(self.description)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Annotations):
            return NotImplemented
        return (
            self.description == other.description
            and np.array_equal(self.onset, other.onset)
            and np.array_equal(self.duration, other.duration, equal_nan=True)
        )

    __hash__ = None

    def __add__(self, other: Annotations) -> Annotations:
        return Annotations(
            np.concatenate([self.onset, other.onset]),
            np.concatenate([self.duration, other.duration]),
            self.description + other.description,
        )

    def select(self, prefixes=BAD_PREFIXES) -> Annotations:
        """The annotations whose description starts with one of ``prefixes``.

        Parameters
        ----------
        prefixes : sequence of str
            Case-insensitive description prefixes (default ``("bad",)``).

        Returns
        -------
        Annotations
        """
        keep = is_bad_segment(self.description, prefixes)
        return Annotations(
            self.onset[keep],
            self.duration[keep],
            tuple(d for d, k in zip(self.description, keep, strict=True) if k),
        )

    def merge(self, other: Annotations, tol: float = 0.0) -> Annotations:
        """Union with ``other``, leaving out its entries that duplicate one of ``self``.

        Parameters
        ----------
        other : Annotations
        tol : float
            Onsets and durations (s) closer than this with the same description
            (case-insensitive) are duplicates (e.g. half a sample).

        Returns
        -------
        Annotations
        """
        if not len(other):
            return self
        if not len(self):
            return other
        lower_a = np.array([d.lower() for d in self.description], dtype=object)
        lower_b = np.array([d.lower() for d in other.description], dtype=object)
        same = lower_a[:, None] == lower_b[None, :]
        d_on = np.abs(self.onset[:, None] - other.onset[None, :]) <= tol
        du_a, du_b = (
            np.nan_to_num(self.duration, nan=-1.0),
            np.nan_to_num(other.duration, nan=-1.0),
        )
        d_du = np.abs(du_a[:, None] - du_b[None, :]) <= tol
        dup = (same & d_on & d_du).any(axis=0)
        return self + Annotations(
            other.onset[~dup],
            other.duration[~dup],
            tuple(d for d, k in zip(other.description, dup, strict=True) if not k),
        )


def is_bad_segment(descriptions, prefixes=BAD_PREFIXES) -> np.ndarray:
    """Which descriptions start with one of ``prefixes`` (case-insensitive).

    Parameters
    ----------
    descriptions : sequence of str, length n
        Annotation descriptions or ``events.tsv`` trial types.
    prefixes : sequence of str
        E.g. :data:`BAD_PREFIXES` (``("bad",)``) or :data:`DISCONTINUITIES`.

    Returns
    -------
    mask : ndarray of bool, shape (n,)
    """
    pre = tuple(p.lower() for p in prefixes)
    return np.array([str(d).lower().startswith(pre) for d in descriptions], dtype=bool)


def annotation_overlaps(
    annotations: Annotations,
    starts,
    n_times: int,
    sfreq: float,
    prefixes=BAD_PREFIXES,
    chunk: int = 4096,
) -> list[str | None]:
    """For each epoch, the first rejecting annotation that overlaps it (MNE's rule).

    Parameters
    ----------
    annotations : Annotations
        Onsets (s) relative to the first data sample.
    starts : array-like of int, shape (n_epochs,)
        First sample of each epoch (index into the data; may be negative or run
        past the end).
    n_times : int
        Samples per epoch; the epoch covers ``start, ..., start + n_times - 1``.
    sfreq : float
        Sampling frequency (Hz).
    prefixes : sequence of str
        Description prefixes that reject (case-insensitive); annotations named
        ``boundary`` are taken with duration 0.
    chunk : int
        Epochs compared at once (bounds the (chunk, n_annotations) work array).

    Returns
    -------
    reasons : list of (str | None), length n_epochs
        Description of the first overlapping rejecting annotation in onset order,
        None where there is none.
    """
    starts = np.asarray(starts, dtype=np.int64).ravel()
    out: list[str | None] = [None] * starts.size
    sel = annotations.select(prefixes)
    if not len(sel) or not starts.size:
        return out
    onset = sel.onset
    dur = np.nan_to_num(sel.duration, nan=0.0)
    dur[np.array([d.lower() == "boundary" for d in sel.description])] = 0.0
    end = onset + dur
    t_start = starts / sfreq
    t_stop = (starts + int(n_times)) / sfreq
    for c0 in range(0, starts.size, chunk):
        s = slice(c0, c0 + chunk)
        hit = (onset[None, :] < t_stop[s, None]) & (end[None, :] > t_start[s, None])
        any_hit = hit.any(axis=1)
        first = hit.argmax(axis=1)
        for i in np.flatnonzero(any_hit):
            out[c0 + int(i)] = sel.description[int(first[i])]
    return out
