"""Data layer: BIDS discovery, EEG file readers (EDF/BDF, BrainVision, EEGLAB), montages.

Errors about bad input are :class:`BidsError` (a ``ValueError``) whose message
names the file and the problem; recoverable problems are recorded as strings in
``Raw.meta["warnings"]`` (and ``Montage.meta["warnings"]``, ``Events.meta["warnings"]``).
"""

from ._errors import BidsError, BidsWarning
from .bids import (
    BidsRecording,
    Events,
    discover,
    read_events,
    read_montage,
    read_recording,
    select_conditions,
    validate_label,
)
from .brainvision import read_brainvision
from .edf import read_edf
from .eeglab import read_eeglab
from .montage import Montage, read_electrodes, standard_montage, standard_positions

__all__ = [
    "BidsError",
    "BidsWarning",
    "BidsRecording",
    "Events",
    "Montage",
    "discover",
    "read_events",
    "read_montage",
    "read_recording",
    "read_electrodes",
    "select_conditions",
    "standard_montage",
    "standard_positions",
    "validate_label",
    "read_raw",
    "read_edf",
    "read_brainvision",
    "read_eeglab",
]


def read_raw(path, **kwargs):
    """Read an EEG file by extension (``.edf``, ``.bdf``, ``.vhdr``, ``.set``) into a Raw (V).

    Parameters
    ----------
    path : path-like
        The data file (for BrainVision the ``.vhdr`` header).
    **kwargs
        Passed to :func:`read_edf`, :func:`read_brainvision` or :func:`read_eeglab`.

    Returns
    -------
    raw : exgsrc.preprocessing.Raw
        Data in volts, channel names and types, sampling rate, and the reader's
        warnings in ``meta["warnings"]``.

    Raises
    ------
    BidsError
        Unknown extension, or the reader's error naming the file and the problem.
    """
    from pathlib import Path

    ext = Path(path).suffix.lower()
    if ext in (".edf", ".bdf"):
        from .edf import read_edf

        return read_edf(path, **kwargs)
    if ext == ".vhdr":
        from .brainvision import read_brainvision

        return read_brainvision(path, **kwargs)
    if ext == ".set":
        from .eeglab import read_eeglab

        return read_eeglab(path, **kwargs)
    raise BidsError(f"{path}: unknown EEG file extension {ext!r} (edf, bdf, vhdr, set)")
