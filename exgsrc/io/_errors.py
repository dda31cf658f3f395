"""Exceptions and warning records of the data layer."""

from __future__ import annotations

__all__ = ["BidsError", "BidsWarning"]


class BidsError(ValueError):
    """Bad input in a BIDS dataset or a data file; the message names the file and the problem."""


class BidsWarning(UserWarning):
    """A recoverable problem with the input (also recorded in ``Raw.meta["warnings"]``)."""
