"""Read any supported EEG file by its extension."""

from __future__ import annotations

from pathlib import Path

from ._errors import BidsError
from .brainvision import read_brainvision
from .edf import read_edf
from .eeglab import read_eeglab

__all__ = ["read_raw"]


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
    raw : exgsrc.containers.Raw
        Data in volts, channel names and types, sampling rate, and the reader's
        warnings in ``meta["warnings"]``.

    Raises
    ------
    BidsError
        Unknown extension, or the reader's error naming the file and the problem.
    """
    ext = Path(path).suffix.lower()
    if ext in (".edf", ".bdf"):
        return read_edf(path, **kwargs)
    if ext == ".vhdr":
        return read_brainvision(path, **kwargs)
    if ext == ".set":
        return read_eeglab(path, **kwargs)
    raise BidsError(f"{path}: unknown EEG file extension {ext!r} (edf, bdf, vhdr, set)")
