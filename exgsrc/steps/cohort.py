"""Steps of ``cohort.smk``: grand averages, the QC table and (demo) the localisation error.

Failed subjects (failed-status files) are skipped and listed, so one bad subject never
stops the cohort results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..store import (
    mean_source_positions,
    open_dataset,
    read_cohort_estimates,
    read_status,
    write_tsv,
)
from ._run import StepContext, flatten

__all__ = ["step_grand_average", "step_localisation_error", "step_qc_table"]


def step_grand_average(ctx: StepContext) -> None:
    """Mean of the subjects' source estimates (``group/..._grandavg.nc``).

    Sources are matched by index: every subject's source space is the same
    template (ico or grid) scaled to the subject's sphere, so index ``i`` is the
    same relative location in every head. The ``x, y, z`` coordinates are the
    mean of the subjects' positions. Failed subjects are skipped and listed.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    paths = flatten(ctx.input)
    usable, failed = read_cohort_estimates(
        {sub: [path] for sub, path in zip(ctx.params.subjects, paths, strict=True)}
    )
    if not usable:
        raise ValueError(f"no subject has a usable source estimate: {failed}")
    used = list(usable)
    ref = usable[used[0]][0]
    arrays = [usable[s][0]["stc"].values for s in used]
    out = ref.copy()
    out["stc"] = (ref["stc"].dims, np.mean(arrays, axis=0), dict(ref["stc"].attrs))
    out["stc"].attrs["long_name"] = f"grand average of {len(used)} subjects"
    out["stc_sd"] = (
        ref["stc"].dims,
        np.std(arrays, axis=0, ddof=1) if len(arrays) > 1 else np.zeros_like(arrays[0]),
        {"units": ref["stc"].attrs.get("units", ""), "long_name": "between-subject SD"},
    )
    mean_pos = mean_source_positions([usable[s][0] for s in used])
    out = out.assign_coords(
        x=("source", mean_pos[:, 0], {"units": "m"}),
        y=("source", mean_pos[:, 1], {"units": "m"}),
        z=("source", mean_pos[:, 2], {"units": "m"}),
    )
    keep = {
        "method",
        "lambda2",
        "orientation",
        "condition",
        "condition_label",
        "snr",
        "coord_frame",
    }
    keep |= {"contrast", "contrast_weights"}  # a contrast's grand average says so
    out.attrs = {k: v for k, v in ref.attrs.items() if k in keep}
    ctx.write(out, ctx.output[0], subjects=used, failed_subjects=failed, n_subjects=len(used))


def _peak(ds, tmin=0.0, tmax=None):
    """(source index, time) of the largest |estimate| in the post-stimulus window."""
    x = np.asarray(ds["stc"].values)
    if x.ndim == 3:
        x = np.linalg.norm(x, axis=1)
    t = np.asarray(ds["time"].values)
    win = t >= tmin
    if tmax is not None:
        win &= t <= tmax
    a = np.abs(x[:, win])
    s, k = np.unravel_index(np.argmax(a), a.shape)
    return int(s), float(t[win][k])


def step_localisation_error(ctx: StepContext) -> None:
    """Demo only: distance between each true dipole and the estimate's peak.

    Conditions without a simulated dipole of their own (config ``conditions`` merging
    or renaming the demo's) have no row.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    truth = json.loads(Path(ctx.input.truth).read_text())
    rows = []
    stc_paths = iter(flatten(ctx.input.stc))
    # stc_files() order: subject, cond, method (expand's product order)
    for sub in ctx.params.subjects:
        for cond in ctx.params.conditions.values():
            for method in ctx.params.methods:
                path = next(stc_paths)
                dip = truth["subjects"][sub]["dipoles"].get(cond)
                if dip is None:  # a condition made of several simulated ones, or renamed
                    continue
                ok, why = read_status(path)
                if not ok:
                    rows.append((sub, cond, method, "failed", "n/a", "n/a", why))
                    continue
                ds = open_dataset(path)
                lat = float(dip["latency"])
                s, t_peak = _peak(ds, lat - 0.05, lat + 0.05)
                pos = np.array([ds["x"].values[s], ds["y"].values[s], ds["z"].values[s]])
                err = float(np.linalg.norm(pos - np.asarray(dip["pos"])))
                rows.append((sub, cond, method, "ok", f"{err * 1000:.2f}", f"{t_peak:.4f}", ""))
    header = ("subject", "condition", "method", "status", "error_mm", "peak_time_s", "error")
    write_tsv(ctx.output[0], header, rows)


def step_qc_table(ctx: StepContext) -> None:
    """One row per subject with the QC figures that matter (``group/qc.tsv``).

    ``params.conditions`` (label -> name) holds the conditions and the contrasts
    (``params.contrasts``: their labels): every one gets an ``snr_peak_<label>``
    column, the conditions also ``epochs_<label>`` (kept/total).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    p = ctx.params
    subjects = list(p.subjects)
    per_sub = {k: flatten(getattr(ctx.input, k)) for k in ("montage", "epochs", "cov", "snr")}
    if ctx.input.resolution:
        per_sub["resolution"] = flatten(ctx.input.resolution)
    stc_files = flatten(ctx.input.stc)
    n_stc = len(stc_files) // max(len(subjects), 1)
    truth = None
    if p.truth and Path(p.truth).exists():
        truth = json.loads(Path(p.truth).read_text())
    methods, conds = list(p.methods), dict(p.conditions)
    contrasts = set(getattr(p, "contrasts", None) or ())  # labels: no epochs of their own
    res_methods = _resolution_methods(per_sub.get("resolution", []))
    header = ["subject", "status", "failed_step", "reason", "n_channels", "n_eeg_used", "bads"]
    header += [f"epochs_{lab}" for lab in conds if lab not in contrasts]
    header += ["cov_rank"] + [f"snr_peak_{lab}" for lab in conds]
    header += [f"psf_peak_err_mm_median_{m}" for m in res_methods]
    if truth:
        header += [f"locerr_mm_mean_{m}" for m in methods]
    header += ["warnings"]
    rows = []
    for i, sub in enumerate(subjects):
        row = dict.fromkeys(header, "n/a")
        row["subject"] = sub
        files = {kind: paths[i] for kind, paths in per_sub.items()}
        sub_stcs = stc_files[i * n_stc : (i + 1) * n_stc]
        loaded = _qc_status(row, files, sub_stcs)
        row["warnings"] = " | ".join(_qc_figures(row, loaded, conds, res_methods))
        if truth and sub in truth["subjects"]:
            _qc_localisation(row, truth["subjects"][sub], sub_stcs, conds, methods)
        rows.append([row[h] for h in header])
    write_tsv(ctx.output[0], header, rows)


def _resolution_methods(res_files) -> list[str]:
    """Inverse methods of the first usable resolution file."""
    for f in res_files:
        ok, _ = read_status(f)
        if ok:
            return [str(m) for m in open_dataset(f)["inverse_method"].values]
    return []


def _qc_status(row: dict, files: dict, stc_files: list) -> dict:
    """Fill status, failed_step and reason; return the subject's usable datasets by kind."""
    status, failed_step, reason = "ok", "", ""
    loaded, failed_stc = {}, []
    for kind, f in [*files.items(), *(("stc", f) for f in stc_files)]:
        ok, why = read_status(f)
        if not ok:
            if kind == "stc":
                failed_stc.append((Path(f).name, why))
            elif status == "ok":
                status, failed_step, reason = "failed", kind, why
            continue
        if kind != "stc":
            loaded[kind] = open_dataset(f)
    if status == "ok" and failed_stc:
        # some conditions failed (e.g. absent from this subject), the rest is usable
        status = "failed" if len(failed_stc) == len(stc_files) else "warning"
        failed_step = "stc"
        reason = f"{len(failed_stc)} of {len(stc_files)} source estimates failed: " + "; ".join(
            f"{name}: {why}" for name, why in failed_stc
        )
    row.update(status=status, failed_step=failed_step, reason=reason)
    return loaded


def _qc_figures(row: dict, loaded: dict, conds: dict, res_methods: list) -> list[str]:
    """Fill the per-file QC columns from the loaded datasets; return the warnings."""
    warns = []
    if "montage" in loaded:
        m = loaded["montage"]
        row["n_channels"] = m.sizes["channel"]
        row["n_eeg_used"] = int(m["used"].values.sum())
        bads = [
            str(c)
            for c, s in zip(m["channel"].values, m["status"].values, strict=True)
            if s == "bad"
        ]
        row["bads"] = ",".join(bads) if bads else "none"
    for ds in loaded.values():  # every step's warnings; the reader's appear once
        warns += [str(w) for w in ds.attrs.get("warnings", [])]
    if "epochs" in loaded:
        counts = loaded["epochs"].attrs.get("epoch_counts", {})
        for lab, cond in conds.items():
            c = counts.get(cond)
            if c and f"epochs_{lab}" in row:
                row[f"epochs_{lab}"] = f"{c['kept']}/{c['total']}"
    if "cov" in loaded:
        row["cov_rank"] = loaded["cov"].attrs.get("rank_estimated", "n/a")
    if "snr" in loaded:
        s = loaded["snr"]
        for lab in conds:
            if lab in s["condition"].values:
                row[f"snr_peak_{lab}"] = f"{float(s['snr'].sel(condition=lab).max()):.2f}"
    if "resolution" in loaded:
        r = loaded["resolution"]
        for m in res_methods:
            if "psf_peak_err" in r and m in r["inverse_method"].values:
                v = float(np.median(r["psf_peak_err"].sel(inverse_method=m).values)) * 1000
                row[f"psf_peak_err_mm_median_{m}"] = f"{v:.2f}"
    return list(dict.fromkeys(warns))


def _qc_localisation(row: dict, truth: dict, stc_files: list, conds: dict, methods: list) -> None:
    """Demo: mean distance (mm) of each method's peak from the true dipoles."""
    errs = {m: [] for m in methods}
    paths = iter(stc_files)  # stc_files() order: condition, then method
    for cond in conds.values():
        for m in methods:
            f = next(paths)
            ok, _ = read_status(f)
            if not ok:
                continue
            dip = truth["dipoles"].get(cond)
            if dip is None:  # a contrast: no true dipole of its own
                continue
            ds = open_dataset(f)
            s_idx, _ = _peak(ds, dip["latency"] - 0.05, dip["latency"] + 0.05)
            pos = np.array([ds[c].values[s_idx] for c in "xyz"])
            errs[m].append(np.linalg.norm(pos - dip["pos"]) * 1000)
    for m in methods:
        if errs[m]:
            row[f"locerr_mm_mean_{m}"] = f"{np.mean(errs[m]):.2f}"
