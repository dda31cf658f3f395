"""Data layer: BIDS discovery, EEG file readers (EDF/BDF, BrainVision, EEGLAB), montages.

Errors about bad input are :class:`BidsError` (a ``ValueError``) whose message
names the file and the problem; recoverable problems are recorded as strings in
``Raw.meta["warnings"]`` (and ``Montage.meta["warnings"]``, ``Events.meta["warnings"]``).

The names below are loaded on first use (PEP 562), so that importing the light
:mod:`exgsrc.io.discovery` (as the workflow does while it builds its DAG) does not
import the readers and numpy.
"""

from importlib import import_module

from ._errors import BidsError, BidsWarning

_WHERE = {
    "BidsRecording": "discovery",
    "discover": "discovery",
    "validate_label": "discovery",
    "Events": "bids",
    "read_events": "bids",
    "read_montage": "bids",
    "read_recording": "bids",
    "select_conditions": "bids",
    "condition_rows": "bids",
    "read_brainvision": "brainvision",
    "read_edf": "edf",
    "read_eeglab": "eeglab",
    "Montage": "montage",
    "read_electrodes": "montage",
    "standard_montage": "montage",
    "standard_positions": "montage",
    "read_raw": "readers",
}

__all__ = ["BidsError", "BidsWarning", *_WHERE]


def __getattr__(name):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
