"""Reading the workflow's netCDF outputs tolerantly for the reports.

The reports take either :class:`xarray.Dataset` objects or paths. Anything
that is absent raises :class:`MissingInput` (rendered as a "missing" block);
anything malformed raises ``ValueError`` naming the file (rendered as
"failed"). Nothing here writes files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

__all__ = [
    "MissingInput",
    "StepFailed",
    "load",
    "data_var",
    "positions",
    "attr_json",
    "classify_paths",
    "source_amplitude",
]


class MissingInput(LookupError):
    """An input the report needs was not given or does not exist."""


class StepFailed(RuntimeError):
    """An input is the workflow's placeholder for a failed step (``exgsrc_status``)."""


def _label(obj) -> str:
    if obj is None:
        return "<none>"
    src = getattr(obj, "encoding", {}).get("source") if hasattr(obj, "encoding") else None
    return str(src or obj if not hasattr(obj, "data_vars") else (src or "dataset"))


def load(obj, what: str, attrs_only: bool = False):
    """Return an in-memory Dataset from a Dataset or a netCDF path.

    With ``attrs_only`` the data variables of a file are not read (only
    coordinates and attributes), for large inputs such as epochs.

    Raises
    ------
    MissingInput
        If ``obj`` is None or the path does not exist.
    StepFailed
        If the file is a failed-step placeholder (attr ``exgsrc_status ==
        "failed"``, reason in ``exgsrc_error``), as written by
        :func:`exgsrc.store.write_failed`.
    ValueError
        If the file cannot be read as netCDF (message names the file).
    """
    import xarray as xr

    if obj is None:
        raise MissingInput(f"no {what} file was given")
    if isinstance(obj, xr.Dataset):
        _check_failed(obj, what, "dataset")
        return obj
    path = Path(obj)
    if not path.exists():
        raise MissingInput(f"{what} file {path} does not exist")
    try:
        with xr.open_dataset(path) as ds:
            out = ds.drop_vars(list(ds.data_vars)).load() if attrs_only else ds.load()
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read {what} file {path}: {err}") from err
    out.encoding["source"] = str(path)
    _check_failed(out, what, path)
    return out


def _check_failed(ds, what, where):
    if str(ds.attrs.get("exgsrc_status", "ok")) == "failed":
        why = _decode(ds.attrs.get("exgsrc_error", "no reason recorded"))
        raise StepFailed(f"the step producing the {what} ({where}) failed: {why}")


def _decode(v):
    if isinstance(v, str):
        text = v[5:] if v.startswith("json:") else v
        try:
            return json.loads(text)
        except (json.JSONDecodeError, ValueError):
            return v
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def data_var(ds, names, what: str):
    """The first of ``names`` present in ``ds``, else its only data variable."""
    for n in names:
        if n in ds.data_vars:
            return ds[n]
    dv = list(ds.data_vars)
    if len(dv) == 1:
        return ds[dv[0]]
    raise ValueError(
        f"{what} dataset {_label(ds)} has none of the variables {list(names)} (has {dv})"
    )


_POS_COORDS = {
    "channel": [
        ("x", "y", "z"),
        ("ch_x", "ch_y", "ch_z"),
        ("channel_x", "channel_y", "channel_z"),
    ],
    "source": [("x", "y", "z"), ("src_x", "src_y", "src_z"), ("source_x", "source_y", "source_z")],
}
_POS_VARS = {
    "channel": ("ch_pos", "channel_pos", "electrode_pos", "pos"),
    "source": ("src_pos", "source_pos", "pos"),
}


def positions(ds, dim: str) -> np.ndarray:
    """Positions (m), shape (n, 3), of the ``dim`` ("channel"/"source") entries of ``ds``."""
    for names in _POS_COORDS[dim]:
        if all(n in ds.variables and ds[n].dims == (dim,) for n in names):
            return np.column_stack([np.asarray(ds[n].values, float) for n in names])
    for n in _POS_VARS[dim]:
        if n in ds.variables and ds[n].ndim == 2 and ds[n].dims[0] == dim:
            return np.asarray(ds[n].values, float)
    raise MissingInput(f"no {dim} positions (x, y, z coordinates on '{dim}') in {_label(ds)}")


def attr_json(ds, *keys, default=None):
    """First attribute among ``keys``; JSON strings (``"json:"`` prefix optional) are decoded."""
    for k in keys:
        if ds is not None and k in ds.attrs:
            return _decode(ds.attrs[k])
    return default


_SUFFIX = {
    "montage": "montage",
    "headmodel": "headmodel",
    "src": "src",
    "fwd": "fwd",
    "epo": "epochs",
    "cov": "cov",
    "inv": "inv",
    "snr": "snr",
    "resolution": "resolution",
}
_ENT = re.compile(r"(?:^|_)(cond|desc)-([^_]+)")


def classify_paths(paths) -> dict:
    """Sort output-tree files into the keyword arguments of the report builders.

    File names follow ``ARCHITECTURE.md`` and the workflow: ``*_montage.nc``,
    ``*_headmodel.nc``, ``*_src.nc``, ``*_fwd.nc``, ``*_epo.nc`` (key
    ``epochs``), ``*_cov.nc``, ``*_inv.nc``, ``*_snr.nc``,
    ``*_resolution.nc``, ``*_cond-<c>_ave.nc``,
    ``*_cond-<c>_desc-<method>_stc.nc``; ``*truth*.json`` is the simulated
    truth. Unknown files are ignored.

    Returns
    -------
    dict
        Keys ``montage``, ``headmodel``, ``src``, ``fwd``, ``epochs``, ``cov``,
        ``inv``, ``snr``, ``resolution`` (paths, where present),
        ``evokeds`` (dict condition -> path), ``stcs`` (dict (condition,
        method) -> path), ``truth`` (path or None).
    """
    out: dict = {"evokeds": {}, "stcs": {}}
    for p in paths:
        p = Path(p)
        name = p.name
        ents = dict(_ENT.findall(p.stem))
        if name.endswith("_stc.nc"):
            out["stcs"][(ents.get("cond", "?"), ents.get("desc", "?"))] = p
        elif name.endswith("_ave.nc"):
            out["evokeds"][ents.get("cond", "?")] = p
        elif name.endswith(".json") and "truth" in name:
            out["truth"] = p
        else:
            for suffix, kind in _SUFFIX.items():
                if name.endswith(f"_{suffix}.nc"):
                    out[kind] = p
    return out


def source_amplitude(da) -> tuple[np.ndarray, bool]:
    """Source estimate as (n_src, n_times) amplitude.

    Free orientation (an ``orientation`` dim of length 3) is reduced by the
    vector norm. Returns ``(data, signed)`` where ``signed`` says whether the
    values can be negative (fixed orientation MNE/dSPM).
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
