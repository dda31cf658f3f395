"""Conditions and contrasts: which ``events.tsv`` rows make each condition (standard library only).

An event's *code* is its value in one column of ``events.tsv`` (``trial_type`` by
default, or ``value``, or any named column). A *conditions spec* says which codes
make which condition:

- ``"all"`` (or None): every distinct code is a condition of its own, named by it;
- a list of keys: one condition per key, named by the key, made of the codes the
  key matches;
- a mapping ``{name: key or [keys...]}``: condition ``name`` is made of every code
  any of its keys matches (several codes merged into one condition).

A key matches a code by MNE's hierarchical tag rule (``mne.Epochs.__getitem__``,
``mne.event.match_event_names``): both are split on ``/`` and the key matches when
all its tags are among the code's tags, so ``auditory`` matches
``auditory/left`` and ``left/auditory``, and ``auditory/left`` matches
``left/auditory`` but not ``auditory``. A key without ``/`` matches a plain code
only when equal. Besides, a number (``2`` in YAML) matches a code of equal numeric
value (``2``, ``02``, ``2.0``), as ``value`` columns hold numbers.

Rows whose code is ``n/a`` or empty, and rows that mark bad segments or
discontinuities (:data:`exgsrc.io.discovery.SEGMENT_MARKERS` in the code or in
``trial_type``), are never condition events.

A *contrast* is a weighted sum of conditions' evoked responses
(:class:`Contrast`, :func:`parse_contrasts`); its effective number of averages is
:func:`contrast_nave` (as ``mne.combine_evoked``).

The workflow's ``common.smk`` calls these functions while Snakemake builds the DAG,
so this module imports nothing but the standard library; the steps use the same
functions (through :func:`exgsrc.io.bids.condition_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._errors import BidsError
from ._tsv import read_tsv
from .discovery import SEGMENT_MARKERS

__all__ = [
    "Contrast",
    "columns_and_codes",
    "condition_event_rows",
    "contrast_nave",
    "event_codes",
    "event_columns",
    "match_code",
    "parse_conditions",
    "parse_contrasts",
    "resolve_conditions",
]

_NA = ("n/a", "")


def event_columns(events_path) -> list[str]:
    """Column names of an ``events.tsv`` (its header row).

    Parameters
    ----------
    events_path : path-like

    Returns
    -------
    list of str
    """
    return list(read_tsv(events_path))


def condition_event_rows(columns: Mapping[str, Sequence[str]], column: str) -> list[bool]:
    """Which rows of an ``events.tsv`` can be condition events, by their code in ``column``.

    Parameters
    ----------
    columns : mapping of str -> sequence of str
        The file's columns (as :func:`exgsrc.io._tsv.read_tsv` returns them).
    column : str
        The column holding the codes.

    Returns
    -------
    list of bool
        False where the code is ``n/a`` or empty, or the code or the row's
        ``trial_type`` starts with a segment marker (``BAD``, ``EDGE``,
        ``boundary``, ``New Segment``; case-insensitive).
    """
    codes = columns[column]
    tt = columns.get("trial_type", [""] * len(codes))
    return [
        c not in _NA
        and not c.lower().startswith(SEGMENT_MARKERS)
        and not t.lower().startswith(SEGMENT_MARKERS)
        for c, t in zip(codes, tt, strict=True)
    ]


def event_codes(events_path, column: str = "trial_type") -> list[str]:
    """Distinct codes of ``column`` in an ``events.tsv`` that can be conditions.

    Parameters
    ----------
    events_path : path-like
    column : str
        ``trial_type``, ``value`` or any column of the file.

    Returns
    -------
    list of str
        In first-seen order; ``n/a``, empty values and segment-marker rows left
        out (:func:`condition_event_rows`).

    Raises
    ------
    BidsError
        Missing or malformed file, or no such column (the message lists the
        file's columns).
    """
    columns, codes = columns_and_codes(events_path, column)
    if codes is None:
        raise BidsError(f"{events_path}: no column {column!r} (columns: {columns})")
    return codes


def columns_and_codes(
    events_path, column: str = "trial_type"
) -> tuple[list[str], list[str] | None]:
    """Column names of an ``events.tsv`` and the distinct codes of ``column``, in one read.

    :func:`event_columns` and :func:`event_codes` together, reading the file once
    (the workflow calls this for every events file of a cohort while Snakemake
    builds the DAG).

    Parameters
    ----------
    events_path : path-like
    column : str
        ``trial_type``, ``value`` or any column of the file.

    Returns
    -------
    columns : list of str
        The header row.
    codes : list of str | None
        As :func:`event_codes`; None when the file has no column ``column``.

    Raises
    ------
    BidsError
        Missing or malformed file.
    """
    cols = read_tsv(events_path)
    if column not in cols:
        return list(cols), None
    keep = condition_event_rows(cols, column)
    return list(cols), list(dict.fromkeys(c for c, k in zip(cols[column], keep, strict=True) if k))


def _number(x) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    try:
        v = float(str(x))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def match_code(key, code: str) -> bool:
    """Whether a condition key selects an event code.

    Parameters
    ----------
    key : str | int | float
        A key of a conditions spec. Text matches by MNE's tag rule: all of the
        key's ``/``-separated tags are among the code's tags. A number (or text that
        reads as one) also matches a code of equal numeric value.
    code : str
        An event's code (its value in the events column).

    Returns
    -------
    bool
    """
    code = str(code)
    if not isinstance(key, int | float) or isinstance(key, bool):
        if set(str(key).split("/")) <= set(code.split("/")):
            return True
    k, c = _number(key), _number(code)
    return k is not None and c is not None and k == c


def _key_text(key) -> str:
    if isinstance(key, bool) or not isinstance(key, str | int | float):
        raise ValueError(f"a condition key must be text or a number, got {key!r}")
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    text = str(key)
    if text == "":
        raise ValueError("a condition key must not be empty")
    return text


def parse_conditions(spec="all") -> dict[str, list] | None:
    """Normalise a conditions spec to ``{name: [keys...]}`` (None for ``"all"``).

    Parameters
    ----------
    spec : "all" | None | sequence | mapping
        See the module docstring.

    Returns
    -------
    dict of str -> list | None
        Condition name -> its keys, in the spec's order; None means every
        distinct code is its own condition.

    Raises
    ------
    ValueError
        A malformed spec: an empty list or mapping, an empty or non-text key,
        a condition without keys, two conditions of the same name.
    """
    if spec is None or (isinstance(spec, str) and spec == "all"):
        return None
    if isinstance(spec, str | int | float):
        spec = [spec]
    if isinstance(spec, Mapping):
        items = []
        for name, keys in spec.items():
            if isinstance(keys, str | int | float):
                keys = [keys]
            keys = list(keys)
            if not keys:
                raise ValueError(f"condition {name!r} lists no event codes")
            for k in keys:
                _key_text(k)
            items.append((_key_text(name), keys))
    else:
        items = [(_key_text(k), [k]) for k in spec]
    if not items:
        raise ValueError("the conditions spec is empty (use 'all' for every code)")
    names = [n for n, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"conditions {dup} are named more than once")
    return dict(items)


def resolve_conditions(codes: Sequence[str], spec="all") -> dict[str, list[str]]:
    """Condition name -> the codes (of ``codes``) that make it.

    Parameters
    ----------
    codes : sequence of str
        Distinct event codes found (e.g. :func:`event_codes` over a dataset).
    spec : "all" | None | sequence | mapping
        The conditions spec (module docstring).

    Returns
    -------
    dict of str -> list of str
        In the spec's order (``"all"``: the order of ``codes``); a condition no code
        matches maps to ``[]`` (the caller decides whether that is an error). Codes
        keep the order of ``codes``; one code may belong to several conditions
        (``auditory`` and ``left`` both take ``auditory/left``).

    Raises
    ------
    ValueError
        A malformed spec (:func:`parse_conditions`).
    """
    codes = [str(c) for c in dict.fromkeys(codes)]
    parsed = parse_conditions(spec)
    if parsed is None:
        return {c: [c] for c in codes}
    return {
        name: [c for c in codes if any(match_code(k, c) for k in keys)]
        for name, keys in parsed.items()
    }


@dataclass(frozen=True)
class Contrast:
    """A weighted sum of conditions (``target - standard`` is ``{target: 1, standard: -1}``).

    Parameters
    ----------
    name : str
        The contrast's name; it is a condition of its own in the outputs.
    weights : dict of str -> float
        Condition name -> weight (non-zero), in the config's order.
    """

    name: str
    weights: dict

    def nave(self, naves: Mapping[str, float]) -> float:
        """Effective number of averages of the contrast (:func:`contrast_nave`).

        Parameters
        ----------
        naves : mapping of str -> float
            Number of averages of each condition (at least those of ``weights``).

        Returns
        -------
        float
        """
        return contrast_nave(list(self.weights.values()), [naves[c] for c in self.weights])


def contrast_nave(weights: Sequence[float], naves: Sequence[float]) -> float:
    """Effective number of averages of a weighted sum of evoked responses.

    ``1 / sum(w_i**2 / nave_i)``, as ``mne.combine_evoked``: the noise variance of
    ``sum(w_i * evoked_i)`` is ``sum(w_i**2 / nave_i)`` times one epoch's.

    Parameters
    ----------
    weights : sequence of float
    naves : sequence of float
        Positive numbers of averages, one per weight.

    Returns
    -------
    float
    """
    if len(weights) != len(naves) or not weights:
        raise ValueError(f"contrast_nave: {len(weights)} weights for {len(naves)} naves")
    if any(not (n > 0) for n in naves):
        raise ValueError(f"contrast_nave: numbers of averages must be positive, got {naves}")
    total = 0.0
    for w, n in zip(weights, naves, strict=True):
        total += float(w) ** 2 / float(n)
    if total == 0:
        raise ValueError("contrast_nave: all weights are zero")
    return 1.0 / total


def parse_contrasts(entries, conditions: Sequence[str]) -> list[Contrast]:
    """Check the ``contrasts`` config against the conditions.

    Parameters
    ----------
    entries : sequence of mapping | None
        Each ``{"name": str, "conditions": {condition: weight, ...}}``.
    conditions : sequence of str
        The condition names (after :func:`resolve_conditions`).

    Returns
    -------
    list of Contrast

    Raises
    ------
    ValueError
        One line naming the config key (``contrasts[i]``): a missing name, a
        name used twice or equal to a condition's, a weight that is not a non-zero
        number, or a condition that does not exist.
    """
    out: list[Contrast] = []
    known = [str(c) for c in conditions]
    for i, entry in enumerate(entries or []):
        where = f"config contrasts[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"{where}: expected {{name: ..., conditions: {{...}}}}, got {entry!r}"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name: a contrast needs a non-empty name, got {name!r}")
        where = f"config contrasts[{i}] ({name!r})"
        if name in known:
            raise ValueError(f"{where}.name: {name!r} is already a condition; choose another name")
        if any(c.name == name for c in out):
            raise ValueError(f"{where}.name: {name!r} names two contrasts")
        weights = entry.get("conditions")
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(
                f"{where}.conditions: expected {{condition: weight, ...}}, got {weights!r}"
            )
        missing = [str(c) for c in weights if str(c) not in known]
        if missing:
            raise ValueError(
                f"{where}.conditions: {missing} not among the conditions {known} "
                "(see config 'conditions' and 'events.column')"
            )
        clean = {}
        for c, w in weights.items():
            if (
                isinstance(w, bool)
                or not isinstance(w, int | float)
                or w == 0
                or not math.isfinite(w)
            ):
                raise ValueError(f"{where}.conditions.{c}: weight {w!r} must be a non-zero number")
            clean[str(c)] = float(w)
        out.append(Contrast(name, clean))
    return out
