"""A whole cohort's source estimates in one labelled Dataset."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr

from ._format import failure_reason, is_failed, open_dataset, read_status

__all__ = ["mean_source_positions", "open_source_estimates", "read_cohort_estimates"]


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


def read_cohort_estimates(paths_per_subject) -> tuple[dict, dict]:
    """Open each subject's source-estimate files; set aside subjects that cannot be used.

    A subject is usable when every one of its files is complete (not failed-status)
    and has the same shape and time axis as the first usable file of the cohort.
    Cohort steps (grand averages, statistics) read their subjects through this, so
    they agree on who is left out and why.

    Parameters
    ----------
    paths_per_subject : mapping of str to sequence of path
        Subject label -> its ``..._stc.nc`` files (e.g. one per condition), in the
        cohort's order.

    Returns
    -------
    usable : dict of str to list of xarray.Dataset
        Subject -> its datasets, in the order of the paths.
    left_out : dict of str to str
        Subject -> why it was left out (the file name and the reason it failed, or
        the shape that differs).
    """
    usable, left_out, ref = {}, {}, None
    for subject, paths in paths_per_subject.items():
        datasets, why = [], None
        for path in paths:
            ok, reason = read_status(path)
            if not ok:
                why = f"{Path(path).name}: {reason}"
                break
            ds = open_dataset(path)
            ref = ds if ref is None else ref
            if ds["stc"].shape != ref["stc"].shape or not np.allclose(
                ds["time"].values, ref["time"].values
            ):
                why = f"shape/time axis {ds['stc'].shape} differs from {ref['stc'].shape}"
                break
            datasets.append(ds)
        if why is None and datasets:
            usable[subject] = datasets
        else:
            left_out[subject] = why or "no source estimate"
    return usable, left_out


def mean_source_positions(datasets) -> np.ndarray:
    """Mean over subjects of the source positions of their estimates.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        One source estimate per subject (coordinates ``x, y, z`` on ``source``, m).

    Returns
    -------
    pos : ndarray, shape (n_sources, 3)
        Metres. Sources are matched by index (the same template in every head).
    """
    return np.mean([np.stack([ds[c].values for c in "xyz"], axis=1) for ds in datasets], axis=0)
