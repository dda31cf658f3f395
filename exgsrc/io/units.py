"""Voltage unit strings -> scale factors to volts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._errors import BidsError

__all__ = ["volt_scale", "unit_scale", "length_scale"]

_PREFIX = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9, "k": 1e3}


def volt_scale(unit: str) -> float | None:
    """Factor converting values in ``unit`` to volts, or None if not a voltage unit.

    Accepts ``V``, ``mV``, ``uV``/``µV``/``μV`` (micro sign or Greek mu), ``nV``,
    ``kV``, and spelled-out forms (``microvolts``), case-insensitively for the
    spelled-out forms.

    Parameters
    ----------
    unit : str
        A ``units`` value of ``channels.tsv`` or a file header.

    Returns
    -------
    float | None
    """
    u = unit.strip()
    low = u.lower()
    words = {
        "volt": 1.0,
        "volts": 1.0,
        "millivolt": 1e-3,
        "millivolts": 1e-3,
        "microvolt": 1e-6,
        "microvolts": 1e-6,
        "nanovolt": 1e-9,
        "nanovolts": 1e-9,
    }
    if low in words:
        return words[low]
    if u.endswith("V") and u[:-1] in _PREFIX:
        return _PREFIX[u[:-1]]
    if low in ("uv", "mv", "nv", "v"):  # tolerate lower-case spellings
        return _PREFIX[low[:-1]] if low != "mv" else 1e-3
    return None


def unit_scale(units, n_ch: int, path: str | Path, ch_names=None) -> np.ndarray:
    """Per-channel scale factors to volts.

    Parameters
    ----------
    units : str | sequence of str
        One unit for all channels or one per channel.
    n_ch : int
    path : path-like
        File named in error messages.
    ch_names : sequence of str | None
        Named in error messages.

    Returns
    -------
    scale : ndarray, shape (n_ch,)

    Raises
    ------
    BidsError
        For an unknown unit (the message names the file and channel).
    """
    if isinstance(units, str):
        units = [units] * n_ch
    units = list(units)
    if len(units) != n_ch:
        raise BidsError(f"{path}: {len(units)} units for {n_ch} channels")
    out = np.empty(n_ch)
    for i, u in enumerate(units):
        s = volt_scale(u)
        if s is None:
            who = ch_names[i] if ch_names is not None else f"#{i}"
            raise BidsError(
                f"{path}: unknown unit {u!r} for channel {who} (expected V, mV, µV, nV)"
            )
        out[i] = s
    return out


def length_scale(unit: str, path: str | Path) -> float:
    """Factor converting a BIDS coordinate unit to metres.

    Parameters
    ----------
    unit : str
        ``"m"``, ``"cm"`` or ``"mm"``.
    path : str | Path
        The file that declares the unit (named in the error).

    Returns
    -------
    float

    Raises
    ------
    BidsError
        For any other unit.
    """
    table = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}
    u = str(unit).strip()
    if u not in table:
        raise BidsError(f"{path}: unknown coordinate unit {unit!r} (BIDS allows m, cm, mm)")
    return table[u]
