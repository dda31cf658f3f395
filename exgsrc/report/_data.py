"""Reading the workflow's netCDF outputs tolerantly for the reports.

The reports take either :class:`xarray.Dataset` objects or paths; files are read
through :mod:`exgsrc.store`, which owns the format (status attributes, JSON
attributes). Anything that is absent raises :class:`MissingInput` (rendered as a
"missing" block); a failed-step placeholder raises :class:`StepFailed` (a "failed"
block with the recorded reason); anything unreadable or malformed raises
``ValueError`` naming the file (a "failed" block). Nothing here writes files.

The reports read exactly the names the workflow's steps write (see
:mod:`exgsrc.steps`); this module has no fallbacks to other names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..store import FILE_SUFFIXES, decode_attr, failure_reason, is_failed, open_dataset
from ._html import notice

__all__ = [
    "CH_XYZ",
    "XYZ",
    "MissingInput",
    "StepFailed",
    "classify_paths",
    "failure_block",
    "load",
    "StcPeak",
    "source_amplitude",
    "stc_peak",
    "variable",
    "xyz",
]

#: coordinates of source positions (m) on ``source``: source space, forward, source
#: estimates, grand averages, resolution metrics; of electrodes on ``channel`` in the montage
XYZ = ("x", "y", "z")
#: coordinates of electrode positions (m) on ``channel`` in the forward model
CH_XYZ = ("ch_x", "ch_y", "ch_z")


class MissingInput(LookupError):
    """An input the report needs was not given or does not exist."""


class StepFailed(RuntimeError):
    """An input is the workflow's placeholder for a failed step (:func:`exgsrc.store.is_failed`)."""


def _label(ds) -> str:
    return str(ds.encoding.get("source", "dataset"))


def _plain(value):
    """An attribute as a plain Python value: JSON decoded, numpy arrays and scalars converted."""
    value = decode_attr(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def load(obj, what: str, attrs_only: bool = False):
    """An in-memory Dataset from a Dataset or a netCDF path, attributes as plain values.

    Parameters
    ----------
    obj : xarray.Dataset | path-like | None
    what : str
        What the input is, for messages (e.g. ``"noise covariance"``).
    attrs_only : bool
        Leave the data variables of a file out (coordinates and attributes
        only), for large inputs such as epochs.

    Returns
    -------
    xarray.Dataset
        A shallow copy; its attributes are decoded (:func:`exgsrc.store.decode_attr`)
        and numpy values turned into Python lists and scalars.

    Raises
    ------
    MissingInput
        If ``obj`` is None or the path does not exist.
    StepFailed
        If the input is a failed-step placeholder (reason from
        :func:`exgsrc.store.failure_reason`).
    ValueError
        If the file cannot be read as netCDF (message names the file).
    """
    import xarray as xr

    if obj is None:
        raise MissingInput(f"no {what} file was given")
    if isinstance(obj, xr.Dataset):
        ds, where = obj.copy(deep=False), "dataset"
    else:
        path = Path(obj)
        if not path.exists():
            raise MissingInput(f"{what} file {path} does not exist")
        try:
            ds = open_dataset(path, attrs_only=attrs_only)
        except Exception as err:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"cannot read {what} file {path}: {err}") from err
        where = path
    ds.attrs = {k: _plain(v) for k, v in ds.attrs.items()}
    if is_failed(ds):
        raise StepFailed(f"the step producing the {what} ({where}) failed: {failure_reason(ds)}")
    return ds


def variable(ds, name: str, what: str):
    """Data variable ``name`` of ``ds``.

    Parameters
    ----------
    ds : xarray.Dataset
    name : str
        The variable the workflow writes (e.g. ``"stc"``).
    what : str
        What the dataset is, for the message.

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ValueError
        ``ds`` has no such variable (the message names the file and what it has).
    """
    if name not in ds.data_vars:
        raise ValueError(
            f"{what} dataset {_label(ds)} has no variable '{name}' (has {list(ds.data_vars)})"
        )
    return ds[name]


def xyz(ds, dim: str, names=XYZ) -> np.ndarray:
    """Positions (m), shape (n, 3), from the three coordinates ``names`` on ``dim``.

    Parameters
    ----------
    ds : xarray.Dataset
    dim : {"channel", "source"}
    names : tuple of str
        :data:`XYZ` or :data:`CH_XYZ`.

    Returns
    -------
    ndarray, shape (n, 3)

    Raises
    ------
    MissingInput
        A coordinate is absent or not on ``dim``.
    """
    if not all(n in ds.variables and ds[n].dims == (dim,) for n in names):
        raise MissingInput(
            f"no {dim} positions (coordinates {', '.join(names)} on '{dim}') in {_label(ds)}"
        )
    return np.column_stack([np.asarray(ds[n].values, float) for n in names])


_ENT = re.compile(r"(?:^|_)(cond|desc)-([^_]+)")


def classify_paths(paths) -> dict:
    """Sort output-tree files into the keyword arguments of the report builders.

    File names end in the suffixes of :data:`exgsrc.store.FILE_SUFFIXES`:
    ``*_montage.nc``, ``*_headmodel.nc``, ``*_src.nc``, ``*_fwd.nc``,
    ``*_epo.nc`` (key ``epochs``), ``*_cov.nc``, ``*_inv.nc``, ``*_snr.nc``,
    ``*_resolution.nc``, ``*_cond-<c>_ave.nc``,
    ``*_cond-<c>_desc-<method>_stc.nc``; ``*truth*.json`` is the simulated
    truth. Unknown files are ignored.

    Parameters
    ----------
    paths : iterable of path-like

    Returns
    -------
    dict
        Keys ``montage``, ``headmodel``, ``src``, ``fwd``, ``epochs``, ``cov``,
        ``inv``, ``snr``, ``resolution`` (paths, where present),
        ``evokeds`` (dict condition -> path), ``stcs`` (dict (condition,
        method) -> path), ``truth`` (path, where present).
    """
    out: dict = {"evokeds": {}, "stcs": {}}
    by_suffix = {f"_{suffix}.nc": kind for kind, suffix in FILE_SUFFIXES.items()}
    for p in paths:
        p = Path(p)
        ents = dict(_ENT.findall(p.stem))
        kind = next((k for s, k in by_suffix.items() if p.name.endswith(s)), None)
        if kind == "stc":
            out["stcs"][(ents.get("cond", "?"), ents.get("desc", "?"))] = p
        elif kind == "evoked":
            out["evokeds"][ents.get("cond", "?")] = p
        elif kind is not None:
            out[kind] = p
        elif p.name.endswith(".json") and "truth" in p.name:
            out["truth"] = p
    return out


def source_amplitude(da) -> tuple[np.ndarray, bool]:
    """Source estimate as (n_src, n_times) amplitude.

    Free orientation (an ``orientation`` dim of length 3) is reduced by the
    vector norm.

    Parameters
    ----------
    da : xarray.DataArray
        Dims ``source``, [``orientation``,] ``time``.

    Returns
    -------
    data : ndarray, shape (n_src, n_times)
    signed : bool
        Whether the values can be negative (fixed orientation MNE/dSPM).
    """
    dims = list(da.dims)
    if "source" not in dims or "time" not in dims:
        raise ValueError(f"source estimate needs dims ('source', 'time'), has {tuple(dims)}")
    if "orientation" in dims and da.sizes["orientation"] > 1:
        arr = da.transpose("source", "orientation", "time").values
        return np.linalg.norm(arr, axis=1), False
    if "orientation" in dims:
        da = da.isel(orientation=0)
    arr = np.asarray(da.transpose("source", "time").values, float)
    return arr, bool(np.any(arr < 0))


class StcPeak(NamedTuple):
    """A source estimate's amplitude and its largest post-stimulus value."""

    amp: np.ndarray  #: (n_src, n_times) amplitude (:func:`source_amplitude`)
    mag: np.ndarray  #: its absolute value
    times: np.ndarray  #: (n_times,) s
    pos: np.ndarray  #: (n_src, 3) source positions, m
    i_src: int  #: source of the peak
    i_t: int  #: time index of the peak
    unit: str  #: the estimate's ``units``


def stc_peak(ds, what: str, window=None) -> StcPeak:
    """Amplitude of the ``stc`` variable and its peak in a time window.

    Parameters
    ----------
    ds : xarray.Dataset
        A source estimate or grand average: ``stc``, coordinates ``x, y, z`` on ``source``.
    what : str
        What the dataset is, for messages.
    window : tuple of float | None
        (start, end) in s; None: ``time >= 0``. All times if the window is empty.

    Returns
    -------
    StcPeak
    """
    da = variable(ds, "stc", what)
    amp, _ = source_amplitude(da)
    t = np.asarray(da["time"].values, float)
    mag = np.abs(amp)
    post = t >= 0 if window is None else (t >= window[0]) & (t <= window[1])
    if not post.any():
        post = np.ones_like(t, bool)
    sub = np.where(post[None, :], mag, -np.inf)
    i_src, i_t = np.unravel_index(int(np.argmax(sub)), sub.shape)
    unit = str(da.attrs.get("units", ""))
    return StcPeak(amp, mag, t, xyz(ds, "source"), int(i_src), int(i_t), unit)


def failure_block(err: Exception, what: str) -> tuple[str, str]:
    """Status and notice of a report block that could not be built.

    Parameters
    ----------
    err : Exception
        :class:`MissingInput` gives "missing", :class:`StepFailed` and anything
        else "failed" (other exceptions with their type in the reason).
    what : str
        The block's name.

    Returns
    -------
    status : str
    html : str
    """
    if isinstance(err, MissingInput):
        return "missing", notice("missing", what, str(err))
    if isinstance(err, StepFailed):
        return "failed", notice("failed", what, str(err))
    return "failed", notice("failed", what, f"{type(err).__name__}: {err}")
