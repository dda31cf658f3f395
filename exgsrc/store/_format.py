"""The file format itself: status attributes, the attribute codec, atomic writers, reading."""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import __version__
from ..provenance import config_sha256, file_sha256, make_provenance

__all__ = [
    "CONTRAST_ATTRS",
    "ERROR_ATTR",
    "FILE_SUFFIXES",
    "STATUS_ATTR",
    "UpstreamFailed",
    "config_sha256",
    "decode_attr",
    "failure_reason",
    "file_sha256",
    "is_failed",
    "make_provenance",
    "open_checked",
    "open_dataset",
    "read_status",
    "write_failed",
    "write_failed_outputs",
    "write_netcdf",
    "write_text_atomic",
    "write_tsv",
]


#: Attribute holding ``"ok"`` or ``"failed"`` on every file the workflow writes.
STATUS_ATTR = "exgsrc_status"
#: Attribute holding the reason of a failed step (exception type and message).
ERROR_ATTR = "exgsrc_error"

#: Suffix of each kind of per-subject output file (``..._<suffix>.nc``), as the
#: workflow's rules name them: one file per subject for the first nine kinds, one per
#: condition (``_cond-<c>``) for ``evoked``, one per condition and method
#: (``_cond-<c>_desc-<method>``) for ``stc``.
FILE_SUFFIXES = {
    "montage": "montage",
    "headmodel": "headmodel",
    "src": "src",
    "fwd": "fwd",
    "epochs": "epo",
    "cov": "cov",
    "inv": "inv",
    "snr": "snr",
    "resolution": "resolution",
    "evoked": "ave",
    "stc": "stc",
}

#: Attributes of a contrast's ave/stc files: name, condition -> weight, condition -> nave.
CONTRAST_ATTRS = ("contrast", "contrast_weights", "contrast_naves")

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


#: Below this many free bytes a failed write is reported as a full disk.
_DISK_FULL_BYTES = 1 << 20


def _write_via_temporary(path: Path, write) -> None:
    """``write(tmp)`` to ``.<name>.<pid>.tmp`` beside ``path``, then rename it into place.

    The temporary is removed on any failure (a later run removes those of killed
    jobs, :func:`exgsrc.runs.remove_stale_temporaries`); a failure on a full disk is
    reported as such, whatever the writer's own error (netCDF says "HDF error").
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free
        if getattr(exc, "errno", None) == errno.ENOSPC or free < _DISK_FULL_BYTES:
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device of {path.parent} ({free} bytes free) while "
                f"writing {path.name}: {type(exc).__name__}: {exc}",
            ) from exc
        raise


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
    _write_via_temporary(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
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
    _write_via_temporary(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding))
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
