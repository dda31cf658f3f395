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
import re
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
    "open_source_estimates",
    "write_failed",
    "write_netcdf",
    "write_text_atomic",
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


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file so that it is either complete or absent.

    The text goes to a hidden temporary file in the same folder, which is then
    renamed over ``path`` (``os.replace`` is atomic on one filesystem): a crash
    never leaves a half-written file under the final name.

    Parameters
    ----------
    path : str or path-like
        Destination; parent folders are created.
    text : str
        Content, written as UTF-8.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


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


_STC_NAME = re.compile(
    r"^sub-(?P<subject>[A-Za-z0-9]+)_task-(?P<task>[A-Za-z0-9]+)"
    r"_cond-(?P<cond>[A-Za-z0-9]+)_desc-(?P<method>[A-Za-z]+)_stc\.nc$"
)


def open_source_estimates(
    output: str | os.PathLike,
    task: str | None = None,
    subjects: Iterable[str] | None = None,
    conditions: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    dtype: str = "float64",
):
    """Every subject's source estimates in one labelled Dataset, for group analysis.

    Reads ``<output>/sub-*/eeg/sub-*_task-*_cond-*_desc-*_stc.nc`` (the workflow's
    outputs) and stacks them on ``subject``, ``condition`` and ``inverse_method`` (not
    ``method``, which ``Dataset.sel`` reads as its own keyword). Sources
    are matched by index: every subject's source space is the same template scaled
    to the subject's head (as for the workflow's grand averages), so the per-subject
    positions are kept in ``pos``. Estimates that failed (failed-status files) or
    are missing are NaN, with the reason in ``status``.

    Parameters
    ----------
    output : path-like
        The workflow's output folder (``output`` in the config).
    task : str | None
        Task label; None: the only task found.
    subjects, conditions, methods : iterable of str | None
        Selections (condition *labels* as in the file names); None: all found.
    dtype : {"float64", "float32"}
        Data type of the stacked array (float32 halves the memory of large cohorts).

    Returns
    -------
    xarray.Dataset
        ``stc`` with dims (subject, condition, inverse_method, source[, orientation],
        time),
        ``pos`` (subject, source, xyz) in m (coords ``x, y, z`` on ``source``: the
        mean over subjects), ``status`` (subject, condition, inverse_method):
        ``"ok"``, ``"failed: <reason>"`` or ``"missing"``; coords ``condition_name``
        (the original ``trial_type`` text) and ``units`` per method.

    Raises
    ------
    ValueError
        No source estimate found, several tasks without ``task``, or estimates whose
        source count, orientation or time axis differ.
    """
    import numpy as np
    import xarray as xr

    root = Path(output)
    found = []
    for path in sorted(root.glob("sub-*/eeg/*_stc.nc")):
        m = _STC_NAME.match(path.name)
        if m:
            found.append((m.groupdict(), path))
    tasks = sorted({e["task"] for e, _ in found})
    if task is None:
        if len(tasks) > 1:
            raise ValueError(f"{root}: several tasks {tasks}; pass task=")
    else:
        found = [(e, p) for e, p in found if e["task"] == task]
    if not found:
        raise ValueError(f"{root}: no source estimate (sub-*/eeg/*_stc.nc) found")

    def pick(key, wanted):
        have = list(dict.fromkeys(e[key] for e, _ in found))
        return have if wanted is None else [str(w) for w in wanted]

    subs = sorted(pick("subject", subjects))
    conds, meths = pick("cond", conditions), pick("method", methods)
    files = {(e["subject"], e["cond"], e["method"]): p for e, p in found}
    status = np.full((len(subs), len(conds), len(meths)), "missing", dtype=object)
    ref, data, pos, names, units = None, None, None, {}, {}
    for i, sub in enumerate(subs):
        for j, cond in enumerate(conds):
            for k, meth in enumerate(meths):
                path = files.get((sub, cond, meth))
                if path is None:
                    continue
                ds = open_dataset(path)
                if is_failed(ds):
                    status[i, j, k] = f"failed: {ds.attrs.get('exgsrc_error', '')}"
                    continue
                da = ds["stc"]
                if ref is None:
                    ref = da
                    shape = (len(subs), len(conds), len(meths), *da.shape)
                    data = np.full(shape, np.nan, dtype=dtype)
                    pos = np.full((len(subs), da.sizes["source"], 3), np.nan)
                elif da.dims != ref.dims or da.shape != ref.shape:
                    raise ValueError(
                        f"{path}: dims {dict(da.sizes)} differ from {dict(ref.sizes)}"
                    )
                elif not np.allclose(da["time"].values, ref["time"].values):
                    raise ValueError(f"{path}: time axis differs from the other estimates")
                data[i, j, k] = da.values
                pos[i] = np.stack([ds[c].values for c in "xyz"], axis=1)
                status[i, j, k] = "ok"
                names[cond] = str(ds.attrs.get("condition", cond))
                units[meth] = str(da.attrs.get("units", ""))
    if ref is None:
        raise ValueError(f"{root}: every selected source estimate failed or is missing")
    dims = ("subject", "condition", "inverse_method", *ref.dims)
    coords = {
        "subject": subs,
        "condition": conds,
        "condition_name": ("condition", [names.get(c, c) for c in conds]),
        "inverse_method": meths,
        "units": ("inverse_method", [units.get(m, "") for m in meths]),
        "time": ("time", ref["time"].values, {"units": "s"}),
        "source": np.arange(ref.sizes["source"]),
    }
    mean_pos = np.nanmean(pos, axis=0)  # the template's location in an average head
    for c, col in zip("xyz", mean_pos.T, strict=True):
        coords[c] = ("source", col, {"units": "m", "long_name": f"{c} (mean over subjects)"})
    if "orientation" in ref.dims:
        coords["orientation"] = ref["orientation"].values
    return xr.Dataset(
        {
            "stc": (dims, data, {"long_name": "source estimate (units per method)"}),
            "pos": (("subject", "source", "xyz"), pos, {"units": "m"}),
            "status": (("subject", "condition", "inverse_method"), status.astype(str)),
        },
        coords=coords,
        attrs={"output": str(root), "task": tasks[0] if task is None else task},
    )
