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
* writers: :func:`write_netcdf`, :func:`write_text_atomic`, :func:`write_tsv`;
* file names: :data:`FILE_SUFFIXES`, the suffix of every kind of per-subject file
  (``sub-<s>_task-<t>[_cond-<c>][_desc-<method>]_<suffix>.nc``).

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

from ._cohort import mean_source_positions, open_source_estimates, read_cohort_estimates
from ._format import (
    CONTRAST_ATTRS,
    ERROR_ATTR,
    FILE_SUFFIXES,
    STATUS_ATTR,
    UpstreamFailed,
    config_sha256,
    decode_attr,
    failure_reason,
    file_sha256,
    is_failed,
    make_provenance,
    open_checked,
    open_dataset,
    read_status,
    write_failed,
    write_failed_outputs,
    write_netcdf,
    write_text_atomic,
    write_tsv,
)
from ._loaders import (
    load_cov,
    load_epochs,
    load_evoked,
    load_forward,
    load_inverse,
    load_montage,
    load_source_space,
    load_sphere,
    load_stc,
    used_channels,
)

__all__ = [
    "mean_source_positions",
    "read_cohort_estimates",
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
]
