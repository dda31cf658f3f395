"""netCDF storage: atomic writes with provenance, and loaders back to objects.

Every array the workflow produces goes through :func:`write_netcdf`, which

* writes to a temporary file in the destination folder and then renames it
  into place (``os.replace``), so a crash never leaves a file that looks
  complete;
* compresses numeric variables (zlib level 4) and optionally down-casts
  floating point data to float32;
* stamps provenance attributes on the file: ``exgsrc_version``,
  ``config_sha256``, ``inputs`` (JSON list of ``{"path", "sha256"}``) and
  ``created`` (UTC ISO-8601), plus any extra parameters given.

Attributes that netCDF cannot hold natively (dicts, lists of mixed types,
``None``, booleans) are stored as JSON strings; :func:`decode_attr` turns them
back.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "STATUS_ATTR",
    "config_sha256",
    "decode_attr",
    "file_sha256",
    "inverse_from_xarray",
    "inverse_to_xarray",
    "is_failed",
    "load_cov",
    "load_forward",
    "load_inverse",
    "load_montage",
    "load_source_space",
    "load_sphere",
    "load_stc",
    "make_provenance",
    "open_dataset",
    "write_failed",
    "write_netcdf",
]

#: Attribute holding ``"ok"`` or ``"failed"`` on every file the workflow writes.
STATUS_ATTR = "exgsrc_status"

_JSON_PREFIX = "json:"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : path-like
        File to hash.
    chunk : int
        Read size in bytes.

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def config_sha256(config: Mapping | None) -> str:
    """SHA-256 of a configuration mapping in canonical JSON form (sorted keys).

    Parameters
    ----------
    config : mapping | None
        The (validated) workflow configuration. ``None`` hashes as ``{}``.

    Returns
    -------
    str
        64 hex digits.
    """
    text = json.dumps(config or {}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_provenance(
    config: Mapping | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    **params: Any,
) -> dict:
    """Build the provenance attributes for :func:`write_netcdf`.

    Parameters
    ----------
    config : mapping | None
        Workflow configuration; hashed into ``config_sha256``.
    inputs : iterable of path-like
        Input files; each is recorded with its SHA-256. Directories are
        recorded without a checksum.
    **params
        Extra attributes (method, parameters, subject, ...).

    Returns
    -------
    dict
        Attributes ready for :func:`write_netcdf`.
    """
    records = []
    for p in inputs:
        p = Path(p)
        sha = file_sha256(p) if p.is_file() else None
        records.append({"path": str(p), "sha256": sha})
    prov = {"config_sha256": config_sha256(config), "inputs": records}
    prov.update(params)
    return prov


def _encode_attr(value: Any) -> Any:
    """Map an attribute value onto something netCDF4 can store."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str | int | float | np.integer | np.floating):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.ndim == 1:
        return value
    if (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return np.asarray(value)
    return _JSON_PREFIX + json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"attribute value of type {type(obj).__name__} is not serialisable")


def decode_attr(value: Any) -> Any:
    """Inverse of the attribute encoding used by :func:`write_netcdf`.

    Parameters
    ----------
    value : object
        An attribute as read back from a file.

    Returns
    -------
    object
        JSON-encoded values (prefixed ``"json:"``) decoded; others unchanged.
    """
    if isinstance(value, str) and value.startswith(_JSON_PREFIX):
        return json.loads(value[len(_JSON_PREFIX) :])
    return value


def _clean_attrs(attrs: Mapping) -> dict:
    return {str(k): _encode_attr(v) for k, v in attrs.items()}


def write_netcdf(
    ds,
    path: str | os.PathLike,
    provenance: Mapping | None = None,
    *,
    precision: str = "float64",
    complevel: int = 4,
) -> Path:
    """Write an xarray Dataset atomically to netCDF4 with provenance attributes.

    Parameters
    ----------
    ds : xarray.Dataset
        Data to write. It is not modified.
    path : path-like
        Destination file. Parent folders are created.
    provenance : mapping | None
        Extra file attributes, typically from :func:`make_provenance`.
        ``exgsrc_version`` and ``created`` are always set; ``exgsrc_status``
        defaults to ``"ok"``.
    precision : {"float64", "float32"}
        Storage type of floating point data variables.
    complevel : int
        zlib compression level for numeric variables.

    Returns
    -------
    Path
        The destination path.
    """
    import numpy as np

    from . import __version__

    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ds.copy(deep=False)
    attrs = dict(ds.attrs)
    attrs.update(provenance or {})
    attrs.setdefault("config_sha256", config_sha256(None))
    attrs.setdefault("inputs", [])
    attrs.setdefault(STATUS_ATTR, "ok")
    attrs["exgsrc_version"] = __version__
    attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    ds.attrs = _clean_attrs(attrs)
    encoding = {}
    for name, var in ds.variables.items():
        var.attrs = _clean_attrs(var.attrs)
        kind = var.dtype.kind
        if kind in "iufcb" and var.ndim > 0:
            enc = {"zlib": True, "complevel": complevel}
            if kind == "f" and name in ds.data_vars and precision == "float32":
                enc["dtype"] = np.dtype("float32")
            encoding[name] = enc
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_failed(path: str | os.PathLike, error: str, provenance: Mapping | None = None) -> Path:
    """Write a placeholder file recording that the step producing ``path`` failed.

    Parameters
    ----------
    path : path-like
        The output the step should have produced.
    error : str
        Human-readable reason (exception type and message).
    provenance : mapping | None
        Extra attributes.

    Returns
    -------
    Path
        The destination path.
    """
    import xarray as xr

    attrs = dict(provenance or {})
    attrs[STATUS_ATTR] = "failed"
    attrs["exgsrc_error"] = str(error)
    return write_netcdf(xr.Dataset(), path, attrs)


def open_dataset(path: str | os.PathLike, *, decode: bool = True):
    """Open a netCDF file written by exgsrc, fully loaded into memory.

    Parameters
    ----------
    path : path-like
        File to read.
    decode : bool
        Decode JSON attributes (``inputs`` etc.) back to Python objects.

    Returns
    -------
    xarray.Dataset
        The dataset; the file handle is closed.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"netCDF file not found: {path}")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds = ds.load()
    if decode:
        ds.attrs = {k: decode_attr(v) for k, v in ds.attrs.items()}
        for var in ds.variables.values():
            var.attrs = {k: decode_attr(v) for k, v in var.attrs.items()}
    return ds


def is_failed(ds_or_path) -> bool:
    """Whether a file (or opened dataset) is a failed-step placeholder.

    Parameters
    ----------
    ds_or_path : xarray.Dataset | path-like

    Returns
    -------
    bool
    """
    ds = ds_or_path
    if isinstance(ds_or_path, str | os.PathLike):
        ds = open_dataset(ds_or_path)
    return ds.attrs.get(STATUS_ATTR, "ok") == "failed"


def _check_ok(ds, path) -> None:
    if is_failed(ds):
        raise ValueError(
            f"{path} records a failed step: {ds.attrs.get('exgsrc_error', 'unknown error')}"
        )


def load_source_space(path):
    """Load a :class:`exgsrc.source_space.SourceSpace` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SourceSpace
    """
    from .source_space import SourceSpace

    ds = open_dataset(path)
    _check_ok(ds, path)
    return SourceSpace.from_xarray(ds)


def load_forward(path):
    """Load a :class:`exgsrc.forward.Forward` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Forward
    """
    from .forward import Forward

    ds = open_dataset(path)
    _check_ok(ds, path)
    return Forward.from_xarray(ds)


def load_cov(path):
    """Load a :class:`exgsrc.covariance.NoiseCov` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    NoiseCov
    """
    from .covariance import NoiseCov

    ds = open_dataset(path)
    _check_ok(ds, path)
    return NoiseCov.from_xarray(ds)


def inverse_to_xarray(inv):
    """Serialise an :class:`exgsrc.inverse.InverseOperator` to an xarray Dataset.

    Uses ``inv.to_xarray()`` when the class provides it; otherwise every array
    field becomes a variable (dims ``channel``, ``component`` = source-major
    source x orientation rows, ``source``, ``xyz`` where the shape says so),
    the source space is embedded (``pos``, ``nn``, ``tris``) and scalars go to
    attributes.

    Parameters
    ----------
    inv : InverseOperator

    Returns
    -------
    xarray.Dataset
    """
    import dataclasses

    import numpy as np

    if hasattr(inv, "to_xarray"):
        return inv.to_xarray()
    ds = inv.src.to_xarray()
    ds.attrs = {"src_kind": inv.src.kind, "src_meta": ds.attrs.get("meta", "{}")}
    n_ch = len(inv.ch_names)
    n_comp = inv.n_sources * inv.n_orient
    ds = ds.assign_coords(channel=list(inv.ch_names), component=np.arange(n_comp))
    known = {
        "eigen_fields": ("eig", "channel"),
        "sing": ("eig",),
        "eigen_leads": ("component", "eig"),
        "source_cov": ("component",),
        "gain_white": ("channel", "component"),
        "noise_eig": ("noise_eig",),
        "noise_eigvec": ("noise_eig", "channel"),
        "proj": ("channel", "channel2"),
        "noise_cov": ("channel", "channel2"),
        "orient_prior": ("component",),
        "depth_prior": ("component",),
        "basis": ("source", "basis_row", "xyz"),
    }
    sizes = {"channel": n_ch, "channel2": n_ch, "component": n_comp, "source": inv.n_sources}
    sizes.update({"xyz": 3})
    none_fields = []
    for f in dataclasses.fields(inv):
        name = f.name
        if name in ("ch_names", "src", "meta"):
            continue
        val = getattr(inv, name)
        if val is None:
            none_fields.append(name)
            continue
        if isinstance(val, np.ndarray):
            dims = known.get(name)
            ok = dims is not None and len(dims) == val.ndim
            if ok:
                for d, size in zip(dims, val.shape, strict=True):
                    if sizes.setdefault(d, size) != size:
                        ok = False
            if not ok:
                dims = tuple(f"{name}_dim{k}" for k in range(val.ndim))
            ds[f"inv_{name}"] = (dims, val, {"long_name": f"InverseOperator.{name}"})
        elif isinstance(val, dict):
            ds.attrs[f"inv_{name}"] = val
        else:
            ds.attrs[f"inv_{name}"] = val.item() if isinstance(val, np.generic) else val
    ds.attrs["inv_none_fields"] = none_fields
    ds.attrs["inv_meta"] = inv.meta
    return ds


def inverse_from_xarray(ds):
    """Inverse of :func:`inverse_to_xarray`.

    Parameters
    ----------
    ds : xarray.Dataset

    Returns
    -------
    InverseOperator
    """
    import dataclasses

    import numpy as np

    from .inverse import InverseOperator
    from .source_space import SourceSpace

    if hasattr(InverseOperator, "from_xarray"):
        return InverseOperator.from_xarray(ds)
    src_ds = ds[["pos", "nn"] + (["tris"] if "tris" in ds else [])]
    src_ds.attrs = {
        "kind": ds.attrs.get("src_kind", "discrete"),
        "meta": ds.attrs.get("src_meta", "{}"),
    }
    src = SourceSpace.from_xarray(src_ds)
    kwargs = {"ch_names": tuple(str(c) for c in ds["channel"].values), "src": src}
    none_fields = decode_attr(ds.attrs.get("inv_none_fields", []))
    for f in dataclasses.fields(InverseOperator):
        name = f.name
        if name in kwargs:
            continue
        if name == "meta":
            kwargs["meta"] = decode_attr(ds.attrs.get("inv_meta", {})) or {}
        elif name in none_fields:
            kwargs[name] = None
        elif f"inv_{name}" in ds:
            kwargs[name] = np.asarray(ds[f"inv_{name}"].values)
        elif f"inv_{name}" in ds.attrs:
            v = decode_attr(ds.attrs[f"inv_{name}"])
            if isinstance(v, np.generic):
                v = v.item()
            kwargs[name] = v
    for k in ("rank", "n_orient", "nave"):
        if k in kwargs:
            kwargs[k] = int(kwargs[k])
    for k in ("loose",):
        if k in kwargs:
            kwargs[k] = float(kwargs[k])
    return InverseOperator(**kwargs)


def load_inverse(path):
    """Load a :class:`exgsrc.inverse.InverseOperator` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    InverseOperator
    """
    ds = open_dataset(path)
    _check_ok(ds, path)
    return inverse_from_xarray(ds)


def load_stc(path, src=None):
    """Load a :class:`exgsrc.inverse.SourceEstimate` from netCDF.

    Parameters
    ----------
    path : path-like
    src : SourceSpace | None
        The matching source space; default: a discrete one built from the
        file's ``x, y, z`` coordinates.

    Returns
    -------
    SourceEstimate
    """
    import numpy as np

    from .inverse import SourceEstimate
    from .source_space import discrete_source_space

    ds = open_dataset(path)
    _check_ok(ds, path)
    if src is None:
        src = discrete_source_space(np.stack([ds[c].values for c in "xyz"], axis=1))
    return SourceEstimate.from_xarray(ds, src)


def load_montage(path):
    """Load the montage dataset written by the workflow's montage step.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    xarray.Dataset
        Variables ``pos`` (channel, xyz) in m; coordinates ``ch_type`` and
        ``bad`` on ``channel``.
    """
    ds = open_dataset(path)
    _check_ok(ds, path)
    return ds


def load_sphere(path):
    """Load a :class:`exgsrc.forward.SphereModel` from the head-model netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SphereModel
    """
    import numpy as np

    from .forward import SphereModel

    ds = open_dataset(path)
    _check_ok(ds, path)
    mu = ds["mu"].values if "mu" in ds else None
    lam = ds["lambda_"].values if "lambda_" in ds else None
    return SphereModel(
        radii=tuple(float(r) for r in ds["radii"].values),
        conductivities=tuple(float(s) for s in ds["conductivities"].values),
        center=tuple(float(c) for c in np.asarray(ds["center"].values)),
        mu=None if mu is None else np.asarray(mu),
        lambda_=None if lam is None else np.asarray(lam),
    )
