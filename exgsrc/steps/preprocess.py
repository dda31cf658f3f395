"""Steps of ``preprocess.smk``: epochs, noise covariance and evoked responses.

Also the preparation every continuous recording goes through (:func:`prepare_continuous`)
and the reading of a separate noise recording (:func:`read_noise_recording`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import xarray as xr

from ..annotations import DISCONTINUITIES
from ..io.bids import condition_rows, read_events, read_recording
from ..io.discovery import discover
from ..preprocessing import (
    average,
    baseline_covariance,
    combine_evoked,
    filter_raw,
    make_epochs,
    resample,
    set_average_reference,
)
from ..store import load_epochs, load_evoked, load_montage, used_channels
from ._run import StepContext, flatten

__all__ = [
    "prepare_continuous",
    "read_noise_recording",
    "recordings",
    "step_contrast",
    "step_epochs",
    "step_evoked",
    "step_noise_cov",
]

log = logging.getLogger("exgsrc")

#: config epochs.reject_by_annotation -> make_epochs(reject_by_annotation=...)
ANNOTATION_REJECTION = {"bad": True, "discontinuities": DISCONTINUITIES, "none": False}
#: config data_checks.nonfinite -> exgsrc.io.bids.read_recording(on_nonfinite=...)
NONFINITE_POLICY = {"error": "raise", "bad_segment": "annotate"}


def recordings(bids_root, subject, task, selection=None):
    """Recordings of one subject's task, restricted to ``selection`` (session, runs).

    Parameters
    ----------
    bids_root : path-like
    subject, task : str
        Labels without ``sub-`` / ``task-``.
    selection : mapping | None
        ``session`` (label or None) and ``runs`` (labels or None), as the workflow's
        ``recording_selection`` passes them.

    Returns
    -------
    list of BidsRecording

    Raises
    ------
    ValueError
        No recording matches.
    """
    sel = dict(selection or {})
    session, runs = sel.get("session"), sel.get("runs")
    recs = discover(
        bids_root,
        subjects=[subject],
        task=task,
        sessions=None if session is None else [session],
        runs=runs,
    )
    if not recs:
        what = "".join(f" {k}-{v}" for k, v in (("ses", session), ("run", runs)) if v)
        raise ValueError(f"{bids_root}: no recording for sub-{subject} task-{task}{what}")
    return recs


def step_epochs(ctx: StepContext) -> None:
    """Filtered, average-referenced, baseline-corrected epochs of all conditions.

    The events that make the conditions are chosen by ``params.events``
    (``column``: the events.tsv column of the codes; ``conditions``: the spec,
    :func:`exgsrc.io.bids.condition_rows`; default: ``trial_type`` and the names of
    ``params.conditions``); each epoch's ``condition`` coordinate is
    its event's code, and the ``condition_codes`` attribute maps every condition
    (``params.conditions``) to the codes it merges.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    p = ctx.params
    used = used_channels(load_montage(ctx.input.montage))
    parts, warnings, empty, codes = [], [], [], {c: [] for c in p.conditions}
    for rec in recordings(p.bids_root, ctx.wildcards.subject, p.task, p.selection):
        ep, rec_codes, rec_warnings, why_empty = _epochs_of_recording(rec, used, p)
        warnings += rec_warnings
        parts.append((rec, ep))
        for cond, cs in rec_codes.items():
            codes.setdefault(cond, []).extend(c for c in cs if c not in codes[cond])
        if why_empty:
            empty.append(why_empty)
    ep0 = parts[0][1]
    epochs = [ep for _, ep in parts]
    if len(empty) == len(parts):
        # else the noise covariance would fail later, saying only "no kept epoch"
        raise ValueError(f"no epoch of any condition: {'; '.join(empty)}")
    warnings += [f"{why}; the other recordings give epochs" for why in empty]
    counts = _epoch_counts(epochs, codes, p.conditions)
    absent = [c for c, n in counts.items() if n["total"] == 0]
    if absent:
        events = sorted({str(ep.meta.get("events_source")) for ep in epochs})
        warnings.append(
            f"{', '.join(events)}: no event of condition(s) {absent}; no evoked response or "
            "source estimate for them"
        )
    ctx.write(
        _epochs_dataset(epochs),
        ctx.output[0],
        subject=ctx.wildcards.subject,
        sfreq=float(ep0.sfreq),
        baseline=list(ep0.baseline) if ep0.baseline is not None else None,
        filter=dict(p.filter),
        reject=dict(p.reject),
        tmin=float(p.epochs["tmin"]),
        tmax=float(p.epochs["tmax"]),
        drop_log=[list(x) for ep in epochs for x in ep.drop_log],
        drop_details=[d for ep in epochs for d in ep.meta.get("drop_details", [])],
        epoch_counts=counts,
        events_column=_events_spec(p)["column"],
        condition_codes={c: codes.get(c, []) for c in p.conditions},
        recordings=[str(r.data_path) for r, _ in parts],
        warnings=warnings,
    )


def _events_spec(p) -> dict:
    """The rule's ``events`` params: ``column`` and the ``conditions`` spec.

    Without them (every condition is exactly one ``trial_type`` code), the condition
    names of ``params.conditions`` are the keys.
    """
    spec = dict(getattr(p, "events", None) or {})
    return {
        "column": spec.get("column", "trial_type"),
        "conditions": spec.get("conditions", list(p.conditions)),
    }


def _epochs_of_recording(rec, used, p):
    """Read, prepare and epoch one recording.

    Returns the epochs of the conditions' events (``meta["events_source"]``: the events
    file), the codes of each condition found in it ({condition: [codes]}), the warnings,
    and why the recording gives no epoch (naming its events file; None when it gives some).
    """
    t0 = time.perf_counter()
    raw = read_recording(rec, on_nonfinite=NONFINITE_POLICY[p.data_checks["nonfinite"]])
    log.info(
        "read %s: %d channels, %.1f s at %g Hz (%.1f s)",
        rec.data_path.name,
        len(raw.ch_names),
        raw.data.shape[1] / raw.sfreq,
        raw.sfreq,
        time.perf_counter() - t0,
    )
    missing = [n for n in used if n not in raw.ch_names]
    if missing:
        raise ValueError(f"{rec.data_path}: channels {missing} of the montage are missing")
    t0 = time.perf_counter()
    raw = prepare_continuous(raw.pick_channels(used), p.filter)
    log.info(
        "filtered and re-referenced %d channels (%.1f s)", len(used), time.perf_counter() - t0
    )
    spec = _events_spec(p)
    ev = read_events(rec, sfreq=raw.sfreq, column=spec["column"])
    rows = condition_rows(ev, spec["conditions"])
    rows = {c: r for c, r in rows.items() if c in p.conditions}
    sel = np.unique(np.concatenate([np.zeros(0, np.int64), *rows.values()]))
    codes = {c: list(dict.fromkeys(ev.trial_type[i] for i in r)) for c, r in rows.items()}
    base = p.epochs["baseline"]
    ep = make_epochs(
        raw,
        ev.sample[sel],
        [ev.trial_type[i] for i in sel],
        p.epochs["tmin"],
        p.epochs["tmax"],
        baseline=None if base is None else tuple(base),
        reject=p.reject.get("eeg"),
        reject_by_annotation=ANNOTATION_REJECTION[p.epochs.get("reject_by_annotation", "bad")],
    )
    ep.meta["events_source"] = ev.meta.get("source")
    warnings = list(raw.warnings) + list(ev.meta.get("warnings", []))
    warnings += _events_outside(ev, raw, rec)
    warnings += list(ep.meta.get("warnings", []))
    log.info("%s: %d of %d epochs kept", rec.data_path.name, ep.n_epochs, len(ep.drop_log))
    why_empty = _why_no_epoch(ev, ep, p.conditions, sel.size) if ep.n_epochs == 0 else None
    return ep, codes, warnings, why_empty


def _events_outside(ev, raw, rec) -> list[str]:
    """A warning naming the events file when event onsets lie outside the recording
    (their epochs are dropped as NO_DATA / TOO_SHORT): wrong file or onset unit."""
    outside = (ev.sample < 0) | (ev.sample >= raw.n_times)
    if not outside.any():
        return []
    onsets = ", ".join(f"{o:g}" for o in ev.onset[outside][:5])
    more = " ..." if outside.sum() > 5 else ""
    return [
        f"{ev.meta.get('source')}: {int(outside.sum())} event(s) at onsets before the start or "
        f"beyond the end of the recording (0-{raw.n_times / raw.sfreq:g} s of "
        f"{rec.data_path.name}): {onsets}{more} s; their epochs are dropped"
    ]


def _why_no_epoch(ev, ep, conditions, n_selected) -> str:
    """Why a recording gives no epoch, naming its events file."""
    src = ev.meta.get("source")
    if len(ev) == 0:
        return f"{src}: no events (the file has no event rows)"
    found = sorted(set(ev.trial_type))
    if not n_selected:
        notes = "".join(f"; {w}" for w in ev.meta.get("warnings", []))
        return f"{src}: none of the conditions {list(conditions)} in its events {found}{notes}"
    reasons = sorted({d["reason"] for d in ep.meta.get("drop_details", [])})
    return f"{src}: all {len(ep.drop_log)} epochs of the conditions dropped ({', '.join(reasons)})"


def _epoch_counts(epochs, codes, conditions) -> dict:
    """Per condition: events found, epochs kept and dropped over all recordings."""
    counts = {}
    for cond in conditions:
        mine = set(codes.get(cond, ()))
        n_all = sum(lab in mine for ep in epochs for lab in _all_labels(ep))
        n_kept = sum(lab in mine for ep in epochs for lab in ep.labels)
        counts[cond] = {"total": n_all, "kept": n_kept, "dropped": n_all - n_kept}
    return counts


def _epochs_dataset(epochs) -> xr.Dataset:
    """The kept epochs of every recording, concatenated (the ``epo.nc`` content)."""
    ep0 = epochs[0]
    data = np.concatenate([ep.data for ep in epochs])
    labels = [str(lab) for ep in epochs for lab in ep.labels]
    run = np.concatenate([np.full(ep.n_epochs, i) for i, ep in enumerate(epochs)])
    return xr.Dataset(
        {
            "epochs": (
                ("epoch", "channel", "time"),
                data,
                {"units": "V", "long_name": "EEG epochs (average reference)"},
            )
        },
        coords={
            "epoch": np.arange(data.shape[0]),
            "channel": list(ep0.ch_names),
            "time": ("time", ep0.times, {"units": "s"}),
            "condition": ("epoch", labels),
            "event_sample": (
                "epoch",
                np.concatenate([ep.events for ep in epochs]).astype(np.int64),
            ),
            "selection": (
                "epoch",
                np.concatenate([ep.selection for ep in epochs]).astype(np.int64),
            ),
            "run_index": ("epoch", run.astype(np.int64)),
        },
    )


def _all_labels(ep):
    """Labels of all events given to make_epochs (kept and dropped), in order."""
    labels = [None] * len(ep.drop_log)
    for i, lab in zip(ep.selection, ep.labels, strict=True):
        labels[int(i)] = lab
    for d in ep.meta.get("drop_details", []):
        labels[int(d["index"])] = d["label"]
    return labels


def prepare_continuous(raw, filter_cfg=None):
    """Band-pass, optionally resample, and average-reference continuous data.

    The steps every recording goes through before epoching (and a noise
    recording before its covariance), in this order: zero-phase FIR band-pass
    (:func:`exgsrc.preprocessing.filter_raw`), resampling
    (:func:`exgsrc.preprocessing.resample`, FFT), average reference.

    Parameters
    ----------
    raw : Raw
        Continuous data (V), the channels to keep only; its data array may be
        filtered in place (the caller's copy is not kept).
    filter_cfg : mapping | None
        The workflow's ``filter`` section: ``l_freq``, ``h_freq`` (Hz or None),
        ``resample`` (Hz or None).

    Returns
    -------
    raw : Raw
    """
    flt = dict(filter_cfg or {})
    if flt.get("l_freq") is not None or flt.get("h_freq") is not None:
        raw = filter_raw(raw, flt.get("l_freq"), flt.get("h_freq"), copy=False)
    new_sfreq = flt.get("resample")
    if new_sfreq is not None and float(new_sfreq) != raw.sfreq:
        log.info("resampling %s Hz -> %s Hz", raw.sfreq, new_sfreq)
        raw = resample(raw, float(new_sfreq))
    return set_average_reference(raw)


def read_noise_recording(bids_root, subject, task, ch_names, filter_cfg=None, session=None):
    """A subject's noise recording(s) prepared as the epochs: channels, filter, reference.

    Every recording of ``task`` for the subject (all runs of the session, found as
    :func:`step_epochs` finds the main task's) is read with
    :func:`exgsrc.io.bids.read_recording`, reduced to ``ch_names`` in that
    order (the montage's good EEG channels, as the epochs) and passed through
    :func:`prepare_continuous` like the main task (band-pass, resampling,
    average reference). Several recordings are then concatenated in time.

    Parameters
    ----------
    bids_root : path-like
    subject, task : str
        Labels without ``sub-``/``task-``.
    ch_names : sequence of str
        Channels to keep, in order.
    filter_cfg : mapping | None
        The workflow's ``filter`` section (``l_freq``, ``h_freq``, ``resample``).
    session : str | None
        Session label of the main task's recordings: the noise recording is taken
        from the same session (same cap placement). None: any session.

    Returns
    -------
    raw : Raw
        Good EEG channels only (``bads`` empty); ``meta["recordings"]`` lists
        the files, ``meta["warnings"]`` collects the readers' warnings.

    Raises
    ------
    ValueError
        No recording of ``task`` for the subject, or channels missing from it.
    """
    try:
        recs = recordings(bids_root, subject, task, {"session": session})
    except ValueError as exc:  # BidsError is a ValueError too
        raise ValueError(
            f"config covariance.noise_task={task!r}: no noise recording of sub-{subject} "
            f"for task {task!r} in {bids_root} ({exc})"
        ) from exc
    names = list(ch_names)
    parts, warnings = [], []
    for rec in recs:
        raw = read_recording(rec)
        missing = [n for n in names if n not in raw.ch_names]
        if missing:
            raise ValueError(
                f"{rec.data_path}: noise recording lacks channels {missing} of the montage"
            )
        marked = [n for n in names if n in raw.bads]
        if marked:
            warnings.append(
                f"{rec.data_path}: channels {marked} are marked bad in the noise recording but "
                "used (good in the main task's montage)"
            )
        raw = prepare_continuous(replace(raw.pick_channels(names), bads=()), filter_cfg)
        warnings += list(raw.warnings)
        parts.append((rec, raw))
    raw0 = parts[0][1]
    sfreqs = sorted({r.sfreq for _, r in parts})
    if len(sfreqs) > 1:
        raise ValueError(f"noise recordings of sub-{subject} differ in sampling rate: {sfreqs}")
    meta = dict(raw0.meta)
    meta["recordings"] = [str(rec.data_path) for rec, _ in parts]
    meta["warnings"] = warnings
    data = np.concatenate([r.data for _, r in parts], axis=1) if len(parts) > 1 else raw0.data
    return replace(raw0, data=data, meta=meta)


def step_noise_cov(ctx: StepContext) -> None:
    """Noise covariance (``cov.nc``).

    From the pre-stimulus baseline (``covariance.tmin``..``tmax``) of all kept
    epochs, or, when ``covariance.noise_task`` is set, from all samples of the
    subject's noise recording(s) prepared by :func:`read_noise_recording`.
    ``covariance.regularize > 0`` then adds diagonal loading
    (:func:`exgsrc.covariance.regularize`) whatever the estimator; with the
    data-driven estimators (shrunk, ledoit_wolf, oas, diagonal_fixed, auto)
    users normally set ``regularize: 0``.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from ..covariance import regularize  # SciPy: imported by this step only
    from ..linalg import compute_rank

    cfg = ctx.params.covariance
    noise_task = cfg.get("noise_task")
    if noise_task:
        mont = load_montage(ctx.input.montage)
        raw = read_noise_recording(
            ctx.params.bids_root,
            ctx.wildcards.subject,
            noise_task,
            used_channels(mont),
            ctx.params.filter,
            session=(ctx.params.selection or {}).get("session"),
        )
        cov = baseline_covariance(raw, method=cfg["method"])
        extra = dict(
            cov_source="noise recording",
            noise_task=noise_task,
            noise_recordings=raw.meta["recordings"],
            n_samples=int(raw.n_times),
            warnings=list(raw.meta["warnings"]),
        )
    else:
        epochs = load_epochs(ctx.input.epochs)
        cov = baseline_covariance(epochs, cfg["tmin"], cfg["tmax"], method=cfg["method"])
        extra = dict(
            cov_source="epochs baseline",
            cov_tmin=cfg["tmin"],
            cov_tmax=cfg["tmax"],
            n_epochs=int(epochs.n_epochs),
        )
    if cfg["regularize"] > 0:
        cov = regularize(cov, eeg=float(cfg["regularize"]))
    rank = compute_rank(cov.data)
    ctx.write(
        cov.to_xarray(),
        ctx.output[0],
        model=True,
        subject=ctx.wildcards.subject,
        cov_method=cfg["method"],
        cov_method_used=str(cov.method),
        regularize=float(cfg["regularize"]),
        rank_estimated=int(rank),
        **extra,
    )


def step_evoked(ctx: StepContext) -> None:
    """Averages of the conditions (``cond-<c>_ave.nc``), one file per condition.

    One job makes every condition's average of a subject: ``params.conditions``
    maps each output's path-safe label (the ``cond`` of its file name) to the
    condition, in the order of the outputs (without it, ``params.condition`` and
    the ``cond`` wildcard name the one condition of a one-output job). Each
    condition is a part of its own (:meth:`StepContext.part`): a condition without
    epochs writes its failed-status file and the others are still written, each
    file as a job of its own would have written it.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    conditions = getattr(ctx.params, "conditions", None)
    if conditions is None:
        conditions = {getattr(ctx.wildcards, "cond", None): ctx.params.condition}
    conditions = dict(conditions)
    outputs = flatten(ctx.output)
    if len(conditions) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for the conditions {list(conditions)}")
    ctx.set_parts(
        {out: {"cond": lab} for lab, out in zip(conditions, outputs, strict=True) if lab}
    )
    epochs = load_epochs(ctx.input.epochs)
    for cond, out in zip(conditions.values(), outputs, strict=True):
        with ctx.part(out):
            codes = epochs.meta.get("condition_codes", {}).get(cond)  # None: an older epo.nc
            ev = average(epochs, cond, codes=codes)
            ctx.write(
                _evoked_dataset(ev),
                out,
                subject=ctx.wildcards.subject,
                condition=cond,
                nave=int(ev.nave),
                condition_codes=list(codes or [cond]),
            )


def _evoked_dataset(ev) -> xr.Dataset:
    return xr.Dataset(
        {"evoked": (("channel", "time"), ev.data, {"units": "V", "long_name": "evoked response"})},
        coords={"channel": list(ev.ch_names), "time": ("time", ev.times, {"units": "s"})},
    )


def step_contrast(ctx: StepContext) -> None:
    """Evoked response of a contrast (``cond-<contrast>_ave.nc``): a weighted sum.

    ``sum(w_i * evoked_i)`` of the conditions' evoked responses
    (:func:`exgsrc.preprocessing.combine_evoked`, as ``mne.combine_evoked``), with
    the effective ``nave = 1 / sum(w_i**2 / nave_i)`` (a float) that the inverse
    then uses to scale the noise covariance. Attributes ``contrast`` (name),
    ``contrast_weights`` and ``contrast_naves`` (per condition) label it.

    Parameters
    ----------
    ctx : StepContext
        ``input.evoked``: the conditions' ``ave.nc`` in the order of
        ``params.weights`` (condition -> weight); ``params.contrast``: the name.
    """
    weights = dict(ctx.params.weights)
    parts = [load_evoked(path) for path in flatten(ctx.input.evoked)]
    got = [ev.condition for ev in parts]
    if got != list(weights):
        raise ValueError(f"contrast {ctx.params.contrast!r}: inputs {got} != {list(weights)}")
    ev = combine_evoked(parts, list(weights.values()), condition=ctx.params.contrast)
    ctx.write(
        _evoked_dataset(ev),
        ctx.output[0],
        subject=ctx.wildcards.subject,
        condition=ev.condition,
        nave=float(ev.nave),
        contrast=ev.condition,
        contrast_weights=weights,
        contrast_naves={c.condition: c.nave for c in parts},
    )
