"""Provenance: checksums of input files and of the configuration (standard library only).

:func:`make_provenance` builds the attributes :func:`exgsrc.store.write_netcdf`
stamps on every file. The workflow's ``common.smk`` hashes the config with
:func:`config_sha256` while Snakemake builds the DAG, so this module imports
nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["config_sha256", "file_sha256", "make_provenance"]


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
