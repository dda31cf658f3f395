"""Data containers: continuous recordings, epochs and evoked responses.

:class:`Raw`, :class:`Epochs` and :class:`Evoked` are frozen dataclasses holding
numpy arrays in volts with their channel names and types. The readers
(:mod:`exgsrc.io`) produce :class:`Raw`; :mod:`exgsrc.preprocessing` turns it into
:class:`Epochs` and :class:`Evoked`; :mod:`exgsrc.store` reads and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .annotations import Annotations

__all__ = ["Raw", "Epochs", "Evoked"]


class _ChannelPicks:
    """Channel selection shared by the containers below (each has ``data`` with the
    channel axis second to last, ``ch_names``, ``ch_types``, ``bads`` and ``meta``)."""

    def _types(self) -> tuple:
        # an Evoked read from a file without channel types holds EEG only
        return self.ch_types or ("eeg",) * len(self.ch_names)

    def pick_channels(self, names):
        """A copy with only some channels.

        Parameters
        ----------
        names : sequence of str
            Channels to keep, in that order.

        Returns
        -------
        Raw | Epochs | Evoked
            Same type as ``self``.

        Raises
        ------
        ValueError
            Naming the channels that are not there.
        """
        idx = _name_index(self.ch_names, names, type(self).__name__)
        types = self._types()
        return replace(
            self,
            data=np.take(self.data, idx, axis=-2),
            ch_names=tuple(self.ch_names[i] for i in idx),
            ch_types=tuple(types[i] for i in idx),
            bads=tuple(b for b in self.bads if b in names),
            meta=dict(self.meta),
        )

    def picks(self, ch_type: str | None = "eeg", exclude_bads: bool = True) -> np.ndarray:
        """Indices of the channels of one type.

        Parameters
        ----------
        ch_type : str | None
            Channel type (``"eeg"``, ``"eog"``, ...); None: every channel.
        exclude_bads : bool
            Leave out the channels marked bad.

        Returns
        -------
        idx : ndarray of int, shape (n_picked,)
        """
        types = self._types()
        return np.asarray(
            [
                i
                for i, (name, kind) in enumerate(zip(self.ch_names, types, strict=True))
                if (ch_type is None or kind == ch_type)
                and not (exclude_bads and name in self.bads)
            ],
            dtype=int,
        )


@dataclass(frozen=True)
class Raw(_ChannelPicks):
    """A continuous recording.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples in volts (V).
    sfreq : float
        Sampling frequency (Hz).
    ch_names : tuple of str, length n_channels
        Unique channel names.
    ch_types : tuple of str, length n_channels
        Lower-case types (``"eeg"``, ``"eog"``, ``"ecg"``, ``"emg"``, ``"misc"``, ``"stim"``...).
    bads : tuple of str
        Channels marked bad (e.g. ``status=bad`` in ``channels.tsv``).
    first_time : float
        Time (s) of the first sample.
    meta : dict
        Provenance: ``"source"`` (file), ``"warnings"`` (list of str), units, etc.
    annotations : exgsrc.annotations.Annotations
        Annotated segments (onset s from the first sample, duration s, description):
        bad segments (``BAD...``), boundaries, markers of the data file. Empty by
        default. :func:`exgsrc.preprocessing.make_epochs` drops epochs overlapping bad ones.
    """

    data: np.ndarray
    sfreq: float
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    bads: tuple[str, ...] = ()
    first_time: float = 0.0
    meta: dict = field(default_factory=dict, compare=False)
    annotations: Annotations = field(default_factory=Annotations, compare=False)

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.ndim != 2:
            raise ValueError(f"Raw.data must be 2-D (n_channels, n_times), got shape {data.shape}")
        object.__setattr__(self, "ch_names", tuple(self.ch_names))
        object.__setattr__(self, "ch_types", tuple(self.ch_types))
        object.__setattr__(self, "bads", tuple(self.bads))
        if len(self.ch_names) != data.shape[0] or len(self.ch_types) != data.shape[0]:
            raise ValueError(
                f"Raw: {data.shape[0]} data rows but {len(self.ch_names)} ch_names and "
                f"{len(self.ch_types)} ch_types"
            )
        dup = sorted({n for n in self.ch_names if self.ch_names.count(n) > 1})
        if dup:
            raise ValueError(f"Raw: duplicate channel names {dup}")
        unknown = [b for b in self.bads if b not in self.ch_names]
        if unknown:
            raise ValueError(f"Raw: bad channels {unknown} are not among ch_names")
        if not self.sfreq > 0:
            raise ValueError(f"Raw: sfreq must be positive, got {self.sfreq}")
        if self.annotations is None:
            object.__setattr__(self, "annotations", Annotations())
        elif not isinstance(self.annotations, Annotations):
            raise TypeError(
                f"Raw.annotations must be an Annotations, got {type(self.annotations).__name__}"
            )
        # own copy of the warnings list (meta dicts are often shallow copies)
        self.meta["warnings"] = list(self.meta.get("warnings", []))

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.data.shape[0])

    @property
    def n_times(self) -> int:
        """Number of samples."""
        return int(self.data.shape[1])

    @property
    def times(self) -> np.ndarray:
        """Sample times (s), shape (n_times,)."""
        return self.first_time + np.arange(self.n_times) / self.sfreq

    @property
    def warnings(self) -> list[str]:
        """Recorded warnings (also in ``meta["warnings"]``)."""
        return self.meta.setdefault("warnings", [])


@dataclass(frozen=True)
class Epochs(_ChannelPicks):
    """Epochs cut around events.

    Parameters
    ----------
    data : ndarray, shape (n_epochs, n_channels, n_times)
        Kept epochs (V), baseline-corrected if ``baseline`` is not None.
    times : ndarray, shape (n_times,)
        Time of each sample relative to the event (s).
    labels : tuple of str, length n_epochs
        Condition of each kept epoch.
    ch_names, ch_types, bads : tuple of str
        As in :class:`Raw`.
    sfreq : float
        Sampling frequency (Hz).
    events : ndarray of int, shape (n_epochs,)
        Event sample (index into the raw data) of each kept epoch.
    selection : ndarray of int, shape (n_epochs,)
        Index of each kept epoch among all events given to :func:`make_epochs`.
    drop_log : tuple of tuple of str, length n_events
        For every event given: ``()`` if kept, else the reasons: channel names whose
        peak-to-peak exceeded the threshold, ``"NO_DATA"`` (window starts before
        the recording), the description of an overlapping bad annotation (e.g.
        ``"BAD_ACQ_SKIP"``) or ``"TOO_SHORT"`` (window ends after it), checked in
        that order of precedence as MNE does.
    baseline : tuple of float | None
        Baseline interval actually used (s).
    meta : dict
        ``"drop_details"`` (list of dicts per dropped epoch), ``"warnings"``, ...
    """

    data: np.ndarray
    times: np.ndarray
    labels: tuple[str, ...]
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    bads: tuple[str, ...]
    sfreq: float
    events: np.ndarray
    selection: np.ndarray
    drop_log: tuple[tuple[str, ...], ...]
    baseline: tuple[float, float] | None = None
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_epochs(self) -> int:
        """Number of kept epochs."""
        return int(self.data.shape[0])

    @property
    def conditions(self) -> tuple[str, ...]:
        """Distinct condition labels of kept epochs, in first-seen order."""
        return tuple(dict.fromkeys(self.labels))


@dataclass(frozen=True)
class Evoked(_ChannelPicks):
    """An average of epochs of one condition.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Average (V).
    times : ndarray, shape (n_times,)
        Seconds relative to the event.
    ch_names : tuple of str
    nave : int | float
        Number of epochs averaged; for a weighted sum of averages (a contrast,
        :func:`exgsrc.preprocessing.combine_evoked`) the effective number
        ``1 / sum(w_i**2 / nave_i)``, a float as in MNE.
    condition : str
        Condition label.
    ch_types, bads : tuple of str
    meta : dict
    """

    data: np.ndarray
    times: np.ndarray
    ch_names: tuple[str, ...]
    nave: int | float
    condition: str
    ch_types: tuple[str, ...] = ()
    bads: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def sfreq(self) -> float:
        """Sampling frequency (Hz) from ``times``."""
        return float(1.0 / np.mean(np.diff(self.times))) if self.times.size > 1 else np.nan


def _name_index(ch_names, names, what) -> np.ndarray:
    pos = {n: i for i, n in enumerate(ch_names)}
    missing = [n for n in names if n not in pos]
    if missing:
        raise ValueError(f"{what}: channels {missing} not found")
    return np.asarray([pos[n] for n in names], dtype=int)
