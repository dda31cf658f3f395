"""The on-disk format: every file kind the workflow writes, its status, its attributes.

This module is the only owner of the format. Steps, reports and the command line
read and write files through it; the core types convert themselves to and from
xarray (``to_xarray`` / ``from_xarray``) and never import this module.

* status: :data:`STATUS_ATTR` (``"ok"`` / ``"failed"``) and :data:`ERROR_ATTR` on
  every file; :func:`is_failed`, :func:`failure_reason`, :func:`read_status`,
  :func:`open_checked` (raises :class:`UpstreamFailed`), and
  :func:`write_failed_outputs` for the placeholders of a failed step;
* readers: ``load_<kind>`` for the source space, head model (sphere), forward,
  noise covariance, inverse operator, epochs, evoked, source estimate and
  montage; :func:`open_source_estimates` for a whole cohort;
* writers: :func:`write_netcdf`, :func:`write_text_atomic`, :func:`write_tsv`.

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
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from . import __version__
from .containers import Epochs, Evoked
from .covariance import NoiseCov
from .forward import Forward, SphereModel
from .inverse import InverseOperator, SourceEstimate
from .provenance import config_sha256, file_sha256, make_provenance
from .source_space import SourceSpace, discrete_source_space

__all__ = [
    "ERROR_ATTR",
    "STATUS_ATTR",
    "UpstreamFailed",
    "config_sha256",
    "decode_attr",
    "failure_reason",
    "file_sha256",
    "is_failed",
    "load_cov",
    "load_epochs",
    "load_evoked",
    "load_forward",
    "load_inverse",
    "load_montage",
    "load_source_space",
    "load_sphere",
    "load_stc",
    "make_provenance",
    "open_checked",
    "open_dataset",
    "open_source_estimates",
    "read_status",
    "used_channels",
    "write_failed",
    "write_failed_outputs",
    "write_netcdf",
    "write_text_atomic",
    "write_tsv",
    "CONTRAST_ATTRS",
]

#: Attribute holding ``"ok"`` or ``"failed"`` on every file the workflow writes.
STATUS_ATTR = "exgsrc_status"
#: Attribute holding the reason of a failed step (exception type and message).
ERROR_ATTR = "exgsrc_error"

_JSON_PREFIX = "json:"


class UpstreamFailed(ValueError):
    """An input file records a failed step (a failed-status placeholder)."""


def _encode_attr(value: Any) -> Any:
    """Map an attribute value onto something netCDF4 can store."""
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
    attrs = dict(provenance or {})
    attrs[STATUS_ATTR] = "failed"
    attrs[ERROR_ATTR] = str(error)
    return write_netcdf(xr.Dataset(), path, attrs)


def write_failed_outputs(
    outputs: Sequence[str | os.PathLike], error: str, provenance: Mapping | None = None
) -> None:
    """Failed-status placeholders for every output of a failed step.

    netCDF files get the status attributes (:func:`write_failed`); JSON files an
    object ``{"exgsrc_status": "failed", "exgsrc_error": ...}``; other text files
    (TSV, HTML) a first line ``# FAILED: <error>``.

    Parameters
    ----------
    outputs : sequence of path-like
    error : str
    provenance : mapping | None
        Attributes of the netCDF placeholders.
    """
    for out in outputs:
        path = Path(out)
        if path.suffix == ".nc":
            write_failed(path, error, provenance)
        elif path.suffix == ".json":
            write_text_atomic(path, json.dumps({STATUS_ATTR: "failed", ERROR_ATTR: error}))
        else:
            write_text_atomic(path, f"# FAILED: {error}\n")


def write_tsv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write a table as TSV, atomically; tabs and newlines inside values become spaces.

    Parameters
    ----------
    path : path-like
    header : sequence of str
    rows : iterable of sequence

    Returns
    -------
    Path
    """
    esc = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
    lines = ["\t".join(header)]
    lines += ["\t".join(str(v).translate(esc) for v in row) for row in rows]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def open_dataset(path: str | os.PathLike, *, decode: bool = True, attrs_only: bool = False):
    """Open a netCDF file written by exgsrc, fully loaded into memory.

    Parameters
    ----------
    path : path-like
        File to read.
    decode : bool
        Decode JSON attributes (``inputs`` etc.) back to Python objects.
    attrs_only : bool
        Leave the data variables out (coordinates and attributes only), for a
        quick look at large files such as epochs.

    Returns
    -------
    xarray.Dataset
        The dataset; the file handle is closed. ``ds.encoding["source"]`` is the path.

    Raises
    ------
    ValueError
        The file does not exist or is not netCDF (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"netCDF file not found: {path}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.drop_vars(list(ds.data_vars)) if attrs_only else ds
            ds = ds.load()
    except OSError as err:
        raise ValueError(f"{path}: not a readable netCDF file ({err})") from err
    if decode:
        ds.attrs = {k: decode_attr(v) for k, v in ds.attrs.items()}
        for var in ds.variables.values():
            var.attrs = {k: decode_attr(v) for k, v in var.attrs.items()}
    ds.encoding["source"] = str(path)
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
        ds = open_dataset(ds_or_path, attrs_only=True)
    return ds.attrs.get(STATUS_ATTR, "ok") == "failed"


def failure_reason(ds) -> str:
    """The recorded reason of a failed-step placeholder.

    Parameters
    ----------
    ds : xarray.Dataset

    Returns
    -------
    str
        ``exgsrc_error``, or ``"no reason recorded"``.
    """
    return str(ds.attrs.get(ERROR_ATTR, "no reason recorded"))


def read_status(path: str | os.PathLike) -> tuple[bool, str]:
    """Whether an output file is usable, and why not.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ok : bool
    reason : str
        Empty when ok; the recorded error of a failed step, or why the file
        cannot be read.
    """
    try:
        ds = open_dataset(path, attrs_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a reason
        return False, f"unreadable: {exc}"
    if is_failed(ds):
        return False, failure_reason(ds)
    return True, ""


def open_checked(path: str | os.PathLike):
    """:func:`open_dataset`, refusing failed-step placeholders.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    UpstreamFailed
        The file records a failed step (the message names it and the reason).
    """
    ds = open_dataset(path)
    if is_failed(ds):
        raise UpstreamFailed(f"input {path} records a failed step: {failure_reason(ds)}")
    return ds


def load_source_space(path) -> SourceSpace:
    """Load a :class:`exgsrc.source_space.SourceSpace` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SourceSpace
    """
    return SourceSpace.from_xarray(open_checked(path))


def load_forward(path) -> Forward:
    """Load a :class:`exgsrc.forward.Forward` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Forward
    """
    return Forward.from_xarray(open_checked(path))


def load_cov(path) -> NoiseCov:
    """Load a :class:`exgsrc.covariance.NoiseCov` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    NoiseCov
    """
    return NoiseCov.from_xarray(open_checked(path))


def load_inverse(path) -> InverseOperator:
    """Load a :class:`exgsrc.inverse.InverseOperator` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    InverseOperator
    """
    return InverseOperator.from_xarray(open_checked(path))


def load_stc(path, src=None) -> SourceEstimate:
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
    ds = open_checked(path)
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
        Variables ``pos`` (channel, xyz) in m; coordinates ``ch_type``,
        ``status``, ``used`` and ``excluded_reason`` on ``channel``.
    """
    return open_checked(path)


def used_channels(montage) -> list[str]:
    """Channels of a montage dataset used for source imaging (good EEG with a position).

    Parameters
    ----------
    montage : xarray.Dataset
        As returned by :func:`load_montage`.

    Returns
    -------
    list of str
    """
    used = montage["used"].values.astype(bool)
    return [str(c) for c, u in zip(montage["channel"].values, used, strict=True) if u]


def load_sphere(path) -> SphereModel:
    """Load a :class:`exgsrc.forward.SphereModel` from the head-model netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SphereModel
    """
    ds = open_checked(path)
    mu = ds["mu"].values if "mu" in ds else None
    lam = ds["lambda_"].values if "lambda_" in ds else None
    return SphereModel(
        radii=tuple(float(r) for r in ds["radii"].values),
        conductivities=tuple(float(s) for s in ds["conductivities"].values),
        center=tuple(float(c) for c in np.asarray(ds["center"].values)),
        mu=None if mu is None else np.asarray(mu),
        lambda_=None if lam is None else np.asarray(lam),
    )


def load_epochs(path) -> Epochs:
    """Rebuild :class:`exgsrc.containers.Epochs` from the workflow's ``epo.nc``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Epochs
    """
    ds = open_checked(path)
    n = ds.sizes["channel"]
    baseline = ds.attrs.get("baseline")
    return Epochs(
        data=np.asarray(ds["epochs"].values, float),
        times=np.asarray(ds["time"].values, float),
        labels=tuple(str(c) for c in ds["condition"].values),
        ch_names=tuple(str(c) for c in ds["channel"].values),
        ch_types=("eeg",) * n,
        bads=(),
        sfreq=float(ds.attrs["sfreq"]),
        events=np.asarray(ds["event_sample"].values, int),
        selection=np.asarray(ds["selection"].values, int),
        drop_log=tuple(tuple(x) for x in ds.attrs.get("drop_log", [])),
        baseline=None if baseline is None or isinstance(baseline, str) else tuple(baseline),
        meta={k: ds.attrs[k] for k in ("condition_codes", "events_column") if k in ds.attrs},
    )


def load_evoked(path) -> Evoked:
    """Rebuild :class:`exgsrc.containers.Evoked` from the workflow's ``ave.nc``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Evoked
        ``nave`` a float for a contrast; ``meta``: its :data:`CONTRAST_ATTRS`.
    """
    ds = open_checked(path)
    names = tuple(str(c) for c in ds["channel"].values)
    nave = float(ds.attrs["nave"])
    return Evoked(
        data=np.asarray(ds["evoked"].values, float),
        times=np.asarray(ds["time"].values, float),
        ch_names=names,
        nave=int(nave) if nave.is_integer() else nave,
        condition=str(ds.attrs["condition"]),
        ch_types=("eeg",) * len(names),
        bads=(),
        meta={k: ds.attrs[k] for k in CONTRAST_ATTRS if k in ds.attrs},
    )


#: Attributes of a contrast's ave/stc files: name, condition -> weight, condition -> nave.
CONTRAST_ATTRS = ("contrast", "contrast_weights", "contrast_naves")

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
        ``"ok"``, ``"failed: <reason>"`` or ``"missing"``; coords on ``condition``:
        ``condition_name`` (original text), ``is_contrast`` (config ``contrasts``) and
        ``contrast_weights`` (JSON ``{"condition": weight}``; ``""`` for a
        condition); ``units`` per method.

    Raises
    ------
    ValueError
        No source estimate found, several tasks without ``task``, or estimates whose
        source count, orientation or time axis differ.
    """
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
    ref, data, pos, names, units, weights = None, None, None, {}, {}, {}
    for i, sub in enumerate(subs):
        for j, cond in enumerate(conds):
            for k, meth in enumerate(meths):
                path = files.get((sub, cond, meth))
                if path is None:
                    continue
                ds = open_dataset(path)
                if is_failed(ds):
                    status[i, j, k] = f"failed: {failure_reason(ds)}"
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
                if "contrast" in ds.attrs:
                    weights[cond] = ds.attrs.get("contrast_weights", {})
    if ref is None:
        raise ValueError(f"{root}: every selected source estimate failed or is missing")
    dims = ("subject", "condition", "inverse_method", *ref.dims)
    coords = {
        "subject": subs,
        "condition": conds,
        "condition_name": ("condition", [names.get(c, c) for c in conds]),
        "is_contrast": ("condition", [c in weights for c in conds]),
        "contrast_weights": (
            "condition",
            [json.dumps(weights[c]) if c in weights else "" for c in conds],
        ),
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
