"""Small readers for BIDS sidecars (TSV and JSON) with error messages naming the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ._errors import BidsError

__all__ = ["read_tsv", "read_json", "tsv_float"]

NA = ("n/a", "")


def read_tsv(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Read a BIDS TSV file into columns.

    Parameters
    ----------
    path : path-like
        The ``.tsv`` file (tab separated, header row first).
    required : tuple of str
        Column names that must be present.

    Returns
    -------
    columns : dict of str -> list of str
        One list per column, values as written (``n/a`` kept as the string).

    Raises
    ------
    BidsError
        When the file is missing, empty, ragged, or lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise BidsError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise BidsError(f"{path}: not UTF-8 text ({err})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() != ""]
    if not lines:
        raise BidsError(f"{path}: empty TSV file (no header row)")
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise BidsError(f"{path}: duplicate column names in header {header}")
    cols: dict[str, list[str]] = {h: [] for h in header}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise BidsError(
                f"{path}: line {i} has {len(row)} fields but the header has {len(header)} "
                "(malformed TSV; fields must be separated by single tabs)"
            )
        for h, v in zip(header, row, strict=True):
            cols[h].append(v.strip())
    missing = [c for c in required if c not in cols]
    if missing:
        raise BidsError(f"{path}: required column(s) {missing} missing (found {header})")
    return cols


def read_json(path: str | Path) -> dict:
    """Read a JSON sidecar; malformed or non-object JSON raises :class:`BidsError`."""
    path = Path(path)
    if not path.is_file():
        raise BidsError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BidsError(f"{path}: malformed JSON ({err})") from None
    if not isinstance(obj, dict):
        raise BidsError(f"{path}: JSON sidecar must be an object, got {type(obj).__name__}")
    return obj


def tsv_float(value: str, path: Path | str, column: str, line: int) -> float:
    """Convert one TSV cell to float (``n/a`` -> NaN), naming file/column/line on failure."""
    if value in NA:
        return float("nan")
    try:
        return float(value)
    except ValueError:
        raise BidsError(
            f"{path}: column {column!r} line {line}: cannot read {value!r} as a number"
        ) from None
