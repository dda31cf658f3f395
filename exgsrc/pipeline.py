"""Glue between the Snakemake workflow and the exgsrc library.

Each ``step_*`` function does one workflow step: it reads the step's input
files, calls one or two library functions and writes the outputs through
:mod:`exgsrc.store`. Workflow scripts (``workflow/scripts/*.py``) are one line:
``run_step(snakemake, step_x)``. The ``exgsrc`` command line calls the same
functions.

Failure policy
--------------
With ``on_error: record`` (the default), :func:`run_step` catches a failing
step, writes its traceback to the job log and writes *failed-status* outputs
(netCDF files with ``exgsrc_status = "failed"`` and the reason in
``exgsrc_error``; text outputs with a ``# FAILED`` line). Downstream steps that
read a failed file fail in turn with a message naming it, so the failure
travels to the subject's final outputs while the other subjects and the
cohort steps (which skip and list failed subjects) carry on. With
``on_error: raise`` the exception stops the job as usual.

To retry a failed subject after fixing its data, delete its outputs (or use
``snakemake --forcerun <rule>``).

Condition labels
----------------
``trial_type`` text becomes a BIDS-safe label by :func:`condition_label`:
ASCII letters and digits are kept except ``X``; every other character
(including ``X``) is written as ``X`` followed by the two hex digits of each
of its UTF-8 bytes. ``"auditory/left"`` -> ``"auditoryX2Fleft"``. The mapping
is reversible (:func:`condition_from_label`); the original text is stored in
the ``condition`` attribute of every output.

Nothing heavy is imported at module level (Snakemake imports this module while
building the DAG).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .store import write_text_atomic

__all__ = [
    "condition_label",
    "condition_from_label",
    "run_step",
]

log = logging.getLogger("exgsrc")


# ---------------------------------------------------------------------------
# condition labels


def condition_label(text: str) -> str:
    """Path-safe, reversible label of a condition (``trial_type``) name.

    Parameters
    ----------
    text : str
        Condition text as in ``events.tsv``.

    Returns
    -------
    str
        Label made of ASCII letters and digits only.
    """
    if not isinstance(text, str) or text == "":
        raise ValueError(f"condition name must be a non-empty string, got {text!r}")
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum() and ch != "X":
            out.append(ch)
        else:
            out.extend(f"X{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def condition_from_label(label: str) -> str:
    """Inverse of :func:`condition_label`.

    Parameters
    ----------
    label : str

    Returns
    -------
    str
        The original condition text.
    """
    raw = bytearray()
    i = 0
    while i < len(label):
        ch = label[i]
        if ch == "X":
            code = label[i + 1 : i + 3]
            try:
                raw.append(int(code, 16))
            except ValueError:
                raise ValueError(f"invalid condition label {label!r} at position {i}") from None
            i += 3
        else:
            raw.extend(ch.encode("ascii"))
            i += 1
    return raw.decode("utf-8")


# ---------------------------------------------------------------------------
# running a step under Snakemake


class UpstreamFailed(RuntimeError):
    """An input file records a failed step."""


def _flatten(files) -> list[str]:
    out = []
    if isinstance(files, str | os.PathLike):
        return [str(files)]
    for f in files:
        out.extend(_flatten(f))
    return out


def _setup_logging(log_file: str | None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


def _write_failed_outputs(outputs: Sequence[str], error: str, prov: Mapping) -> None:
    from .store import write_failed

    for out in outputs:
        p = Path(out)
        if p.suffix == ".nc":
            write_failed(p, error, prov)
        else:
            if p.suffix == ".json":
                text = json.dumps({"exgsrc_status": "failed", "exgsrc_error": error})
            else:
                text = f"# FAILED: {error}\n"
            write_text_atomic(p, text)


class StepContext:
    """What a step function gets: inputs, outputs, params, config, provenance.

    Attributes
    ----------
    input, output, params, wildcards : Snakemake's named lists (or plain objects)
    config : dict
    log_file : str | None
    rule : str
    provenance : dict
        Base provenance attributes (config hash, input checksums, rule, wildcards).
    precision : str
    """

    def __init__(self, snakemake):
        self.input = snakemake.input
        self.output = snakemake.output
        self.params = snakemake.params
        self.wildcards = snakemake.wildcards
        self.config = dict(snakemake.config)
        self.rule = getattr(snakemake, "rule", "step")
        logs = _flatten(getattr(snakemake, "log", []))
        self.log_file = logs[0] if logs else None
        self.precision = self.config.get("precision", "float64")
        self._prov = None

    @property
    def provenance(self) -> dict:
        if self._prov is None:
            from .store import make_provenance

            wc = {k: v for k, v in dict(getattr(self.wildcards, "items", dict)()).items()}
            self._prov = make_provenance(
                self.config, _flatten(self.input), exgsrc_rule=self.rule, wildcards=wc
            )
        return self._prov

    def write(self, ds, path, *, model: bool = False, **attrs):
        """Write a Dataset atomically with this job's provenance and precision.

        Parameters
        ----------
        ds : xarray.Dataset
        path : str | Path
            One of the job's outputs.
        model : bool
            A model file (montage, head model, source space, forward, noise
            covariance, inverse operator): always float64, whatever the
            configured ``precision``. Rounding them to float32 would make a
            covariance indefinite (relative error ~1e-7 against eigenvalues that
            span 1e-10) and degrade every estimate computed from them.
        **attrs
            Extra file attributes (override the provenance ones).

        Returns
        -------
        Path
        """
        from .store import write_netcdf

        prov = dict(self.provenance)
        prov.update(attrs)
        precision = "float64" if model else self.precision
        return write_netcdf(ds, path, prov, precision=precision)


def run_step(snakemake, func: Callable[[StepContext], None]) -> None:
    """Run one workflow step under Snakemake with logging and the failure policy.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake injects into scripts.
    func : callable
        ``func(ctx)`` with ``ctx`` a :class:`StepContext`.
    """
    ctx = StepContext(snakemake)
    _setup_logging(ctx.log_file)
    from ._system import thread_budget

    log.info(
        "rule %s, wildcards %s, threads %s (numerics use %d)",
        ctx.rule,
        dict(ctx.wildcards.items()),
        getattr(snakemake, "threads", 1),
        thread_budget(),
    )
    try:
        func(ctx)
    except Exception as exc:  # noqa: BLE001 - policy decides
        log.error("step failed:\n%s", traceback.format_exc())
        if ctx.config.get("on_error", "record") == "raise":
            raise
        msg = f"{type(exc).__name__}: {exc}"
        try:
            prov = ctx.provenance
        except Exception:  # noqa: BLE001 - inputs may be unreadable
            prov = {}
        _write_failed_outputs(_flatten(ctx.output), msg, prov)
        log.warning("recorded failed outputs: %s", msg)
    else:
        log.info("done")


# ---------------------------------------------------------------------------
# helpers


def _ok(path) -> None:
    """Raise UpstreamFailed if ``path`` is a failed-status placeholder."""
    from .store import STATUS_ATTR, open_dataset

    ds = open_dataset(path)
    if ds.attrs.get(STATUS_ATTR) == "failed":
        raise UpstreamFailed(f"input {path} failed: {ds.attrs.get('exgsrc_error')}")
    return ds


def lambda2_from(inverse_cfg: Mapping) -> float:
    """``lambda2`` from the ``inverse`` config section (``1/snr**2`` unless given).

    Parameters
    ----------
    inverse_cfg : mapping
        Keys ``lambda2`` (float | None) and ``snr`` (float).

    Returns
    -------
    float
    """
    lam = inverse_cfg.get("lambda2")
    if lam is not None:
        return float(lam)
    snr = float(inverse_cfg.get("snr", 3.0))
    if not snr > 0:
        raise ValueError(f"config inverse.snr must be positive, got {snr}")
    return 1.0 / snr**2


def _recordings(bids_root, subject, task, selection=None):
    """Recordings of one subject's task, restricted to ``selection`` (session, runs)."""
    from .io.bids import discover

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


def _used_channels(montage_ds) -> list[str]:
    used = montage_ds["used"].values.astype(bool)
    return [str(c) for c, u in zip(montage_ds["channel"].values, used, strict=True) if u]


def load_epochs(path):
    """Rebuild :class:`exgsrc.preprocessing.Epochs` from the workflow's ``epo.nc``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Epochs
    """
    import numpy as np

    from .preprocessing import Epochs

    ds = _ok(path)
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
        meta={},
    )


def load_evoked(path):
    """Rebuild :class:`exgsrc.preprocessing.Evoked` from the workflow's ``ave.nc``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Evoked
    """
    import numpy as np

    from .preprocessing import Evoked

    ds = _ok(path)
    names = tuple(str(c) for c in ds["channel"].values)
    return Evoked(
        data=np.asarray(ds["evoked"].values, float),
        times=np.asarray(ds["time"].values, float),
        ch_names=names,
        nave=int(ds.attrs["nave"]),
        condition=str(ds.attrs["condition"]),
        ch_types=("eeg",) * len(names),
        bads=(),
    )


# ---------------------------------------------------------------------------
# steps


def step_demo_bids(ctx: StepContext) -> None:
    """Simulate the demo cohort into ``config["demo"]["root"]``.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from .simulate import make_demo_bids

    demo = dict(ctx.params.demo)
    root = demo.pop("root")
    make_demo_bids(
        root,
        n_subjects=demo["n_subjects"],
        conditions=tuple(demo["conditions"]),
        seed=demo["seed"],
        n_channels=demo["n_channels"],
        n_trials=demo["n_trials"],
        sfreq=demo["sfreq"],
    )


def step_dataset_description(ctx: StepContext) -> None:
    """Write the derivatives' ``dataset_description.json`` (GeneratedBy: exgsrc).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import datetime as dt

    from . import __version__

    desc = {
        "Name": "exgsrc source imaging derivatives",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "exgsrc",
                "Version": __version__,
                "Description": "EEG source imaging on sphere head models (Snakemake workflow)",
            }
        ],
        "SourceDatasets": [{"URL": Path(ctx.params.bids_root).resolve().as_uri()}],
        "exgsrc": {
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": ctx.config,
        },
    }
    write_text_atomic(ctx.output[0], json.dumps(desc, indent=2, default=str) + "\n")


def step_montage(ctx: StepContext) -> None:
    """Channel table and electrode positions of one subject (``montage.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import numpy as np
    import xarray as xr

    from .io.bids import read_montage, read_recording

    p = ctx.params
    rec = _recordings(p.bids_root, ctx.wildcards.subject, p.task, p.selection)[0]
    raw = read_recording(rec)
    eeg_good = [
        n
        for n, t in zip(raw.ch_names, raw.ch_types, strict=True)
        if t == "eeg" and n not in raw.bads
    ]
    mont = read_montage(rec, ch_names=eeg_good, fallback=p.fallback)
    lut = dict(zip(mont.ch_names, mont.pos, strict=True))
    pos = np.array([lut.get(n, (np.nan,) * 3) for n in raw.ch_names], float).reshape(-1, 3)
    used = np.array([n in lut for n in raw.ch_names], bool)
    if used.sum() < 4:
        raise ValueError(
            f"{rec.data_path}: only {int(used.sum())} good EEG channels with positions "
            f"(need >= 4): {sorted(lut)}"
        )
    status = ["bad" if n in raw.bads else "good" for n in raw.ch_names]
    reason = [
        "bad"
        if n in raw.bads
        else ("not EEG" if t != "eeg" else ("no position" if n not in lut else ""))
        for n, t in zip(raw.ch_names, raw.ch_types, strict=True)
    ]
    ds = xr.Dataset(
        {"pos": (("channel", "xyz"), pos, {"units": "m", "long_name": "electrode position"})},
        coords={
            "channel": list(raw.ch_names),
            "xyz": ["x", "y", "z"],
            "x": ("channel", pos[:, 0], {"units": "m"}),
            "y": ("channel", pos[:, 1], {"units": "m"}),
            "z": ("channel", pos[:, 2], {"units": "m"}),
            "ch_type": ("channel", list(raw.ch_types)),
            "status": ("channel", status),
            "used": ("channel", used.astype(np.int8), {"long_name": "used for source imaging"}),
            "excluded_reason": ("channel", reason),
        },
    )
    ctx.write(
        ds,
        ctx.output[0],
        model=True,
        subject=ctx.wildcards.subject,
        recording=str(rec.data_path),
        sfreq=float(raw.sfreq),
        coord_frame=mont.coord_frame,
        fiducials=mont.meta.get("fiducials", {}),
        warnings=list(raw.warnings) + list(mont.meta.get("warnings", [])),
        n_channels_used=int(used.sum()),
    )


def step_head_model(ctx: StepContext) -> None:
    """Sphere head model: fitted to the electrodes or from config (``headmodel.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import numpy as np
    import xarray as xr

    from .forward import SphereModel

    cfg = ctx.params.head_model
    mont = _ok(ctx.input.montage)
    names = _used_channels(mont)
    pos = mont["pos"].sel(channel=names).values
    rel = np.asarray(cfg["relative_radii"], float)
    if not np.isclose(rel[-1], 1.0):
        raise ValueError(
            f"config head_model.relative_radii must end with 1.0 (scalp), got {rel.tolist()}"
        )
    template = SphereModel(radii=tuple(rel * 0.09), conductivities=tuple(cfg["conductivities"]))
    if cfg["kind"] == "fit":
        sphere = template.fit(pos)
    else:
        if cfg.get("radius") is None or cfg.get("center") is None:
            raise ValueError("config head_model.kind=fixed needs head_model.radius and .center")
        sphere = SphereModel(
            radii=tuple(rel * float(cfg["radius"])),
            conductivities=tuple(cfg["conductivities"]),
            center=tuple(cfg["center"]),
        )
    dist = np.linalg.norm(pos - np.asarray(sphere.center), axis=1) - sphere.scalp_radius
    ds = xr.Dataset(
        {
            "radii": (
                "shell",
                np.asarray(sphere.radii),
                {"units": "m", "long_name": "shell radius"},
            ),
            "conductivities": (
                "shell",
                np.asarray(sphere.conductivities),
                {"units": "S/m", "long_name": "shell conductivity"},
            ),
            "center": ("xyz", np.asarray(sphere.center), {"units": "m", "long_name": "centre"}),
            "electrode_distance": (
                "channel",
                dist,
                {"units": "m", "long_name": "electrode distance from the scalp shell"},
            ),
        },
        coords={"shell": np.arange(sphere.n_shells), "xyz": ["x", "y", "z"], "channel": names},
    )
    ctx.write(ds, ctx.output[0], model=True, kind=cfg["kind"], subject=ctx.wildcards.subject)


def _sphere_from_ds(ds):
    from .forward import SphereModel

    return SphereModel(
        radii=tuple(float(r) for r in ds["radii"].values),
        conductivities=tuple(float(s) for s in ds["conductivities"].values),
        center=tuple(float(c) for c in ds["center"].values),
    )


def step_source_space(ctx: StepContext) -> None:
    """Source space scaled to the subject's sphere (``src.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from .source_space import grid_source_space, ico_source_space

    cfg = ctx.params.source_space
    sphere = _sphere_from_ds(_ok(ctx.input.head_model))
    radius = float(cfg["radius_fraction"]) * sphere.scalp_radius
    if radius >= sphere.inner_radius:
        raise ValueError(
            f"config source_space.radius_fraction={cfg['radius_fraction']} puts sources at "
            f"{radius * 1000:.1f} mm, outside the inner shell ({sphere.inner_radius * 1000:.1f} mm)"
        )
    if cfg["kind"] == "ico":
        src = ico_source_space(int(cfg["grade"]), radius, sphere.center)
    else:
        # spacing given at a 90 mm scalp radius: scaled so every subject has the same grid
        spacing = float(cfg["spacing"]) * sphere.scalp_radius / 0.09
        src = grid_source_space(spacing, radius, sphere.center)
    ctx.write(src.to_xarray(), ctx.output[0], model=True, subject=ctx.wildcards.subject)


def step_forward(ctx: StepContext) -> None:
    """Free-orientation sphere forward (``fwd.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from .forward import make_sphere_forward_free
    from .source_space import SourceSpace

    mont = _ok(ctx.input.montage)
    names = _used_channels(mont)
    pos = mont["pos"].sel(channel=names).values
    sphere = _sphere_from_ds(_ok(ctx.input.head_model)).with_berg_scherg()
    src = SourceSpace.from_xarray(_ok(ctx.input.src))
    fwd = make_sphere_forward_free(pos, src, sphere, ch_names=names)
    ctx.write(fwd.to_xarray(), ctx.output[0], model=True, subject=ctx.wildcards.subject)


def step_epochs(ctx: StepContext) -> None:
    """Filtered, average-referenced, baseline-corrected epochs of all conditions.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import numpy as np
    import xarray as xr

    from .io.bids import read_events, read_recording
    from .preprocessing import make_epochs

    p = ctx.params
    mont = _ok(ctx.input.montage)
    used = _used_channels(mont)
    parts = []
    warnings = []
    for rec in _recordings(p.bids_root, ctx.wildcards.subject, p.task, p.selection):
        t0 = time.perf_counter()
        raw = read_recording(rec)
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
        ev = read_events(rec, sfreq=raw.sfreq)
        base = p.epochs["baseline"]
        ep = make_epochs(
            raw,
            ev.sample,
            ev.trial_type,
            p.epochs["tmin"],
            p.epochs["tmax"],
            baseline=None if base is None else tuple(base),
            reject=p.reject.get("eeg"),
            conditions=list(p.conditions),
        )
        warnings += list(raw.warnings) + list(ev.meta.get("warnings", []))
        warnings += list(ep.meta.get("warnings", []))
        log.info("%s: %d of %d epochs kept", rec.data_path.name, ep.n_epochs, len(ep.drop_log))
        parts.append((rec, ep))
    ep0 = parts[0][1]
    data = np.concatenate([ep.data for _, ep in parts])
    labels = sum((list(ep.labels) for _, ep in parts), [])
    drop_log = sum((list(ep.drop_log) for _, ep in parts), [])
    details = sum((list(ep.meta.get("drop_details", [])) for _, ep in parts), [])
    events = np.concatenate([ep.events for _, ep in parts])
    selection = np.concatenate([ep.selection for _, ep in parts])
    run = np.concatenate([np.full(ep.n_epochs, i) for i, (_, ep) in enumerate(parts)])
    counts = {}
    for cond in p.conditions:
        n_all = sum(
            sum(1 for d, lab in zip(ep.drop_log, _all_labels(ep), strict=True) if lab == cond)
            for _, ep in parts
        )
        n_kept = sum(1 for lab in labels if lab == cond)
        counts[cond] = {"total": n_all, "kept": n_kept, "dropped": n_all - n_kept}
    ds = xr.Dataset(
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
            "condition": ("epoch", [str(x) for x in labels]),
            "event_sample": ("epoch", events.astype(np.int64)),
            "selection": ("epoch", selection.astype(np.int64)),
            "run_index": ("epoch", run.astype(np.int64)),
        },
    )
    ctx.write(
        ds,
        ctx.output[0],
        subject=ctx.wildcards.subject,
        sfreq=float(ep0.sfreq),
        baseline=list(ep0.baseline) if ep0.baseline is not None else None,
        filter=dict(p.filter),
        reject=dict(p.reject),
        tmin=float(p.epochs["tmin"]),
        tmax=float(p.epochs["tmax"]),
        drop_log=[list(x) for x in drop_log],
        drop_details=details,
        epoch_counts=counts,
        recordings=[str(r.data_path) for r, _ in parts],
        warnings=warnings,
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
    from .preprocessing import filter_raw, resample, set_average_reference

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
    from dataclasses import replace

    import numpy as np

    from .io.bids import read_recording

    try:
        recs = _recordings(bids_root, subject, task, {"session": session})
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
    from .covariance import regularize
    from .linalg import compute_rank
    from .preprocessing import baseline_covariance

    cfg = ctx.params.covariance
    noise_task = cfg.get("noise_task")
    if noise_task:
        mont = _ok(ctx.input.montage)
        raw = read_noise_recording(
            ctx.params.bids_root,
            ctx.wildcards.subject,
            noise_task,
            _used_channels(mont),
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
    """Average of one condition (``cond-<c>_ave.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import xarray as xr

    from .preprocessing import average

    epochs = load_epochs(ctx.input.epochs)
    cond = ctx.params.condition
    ev = average(epochs, cond)
    ds = xr.Dataset(
        {"evoked": (("channel", "time"), ev.data, {"units": "V", "long_name": "evoked response"})},
        coords={"channel": list(ev.ch_names), "time": ("time", ev.times, {"units": "s"})},
    )
    ctx.write(ds, ctx.output[0], subject=ctx.wildcards.subject, condition=cond, nave=int(ev.nave))


def step_inverse_operator(ctx: StepContext) -> None:
    """Method-independent inverse operator (``inv.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from .inverse import make_inverse_operator
    from .store import inverse_to_xarray, load_cov, load_forward

    _ok(ctx.input.fwd)
    _ok(ctx.input.cov)
    fwd = load_forward(ctx.input.fwd)
    cov = load_cov(ctx.input.cov)
    fwd = fwd.pick_channels(cov.ch_names)
    loose = float(ctx.params.loose)
    depth = ctx.params.depth
    inv = make_inverse_operator(fwd, cov, loose=loose, depth=depth, fixed=loose == 0.0)
    ctx.write(
        inverse_to_xarray(inv),
        ctx.output[0],
        model=True,
        subject=ctx.wildcards.subject,
        loose=loose,
        depth=depth,
    )


def step_source_estimate(ctx: StepContext) -> None:
    """Source estimate of one condition with one method (``desc-<method>_stc.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from .inverse import apply_inverse
    from .store import load_inverse

    _ok(ctx.input.inv)
    inv = load_inverse(ctx.input.inv)
    ev = load_evoked(ctx.input.evoked)
    lambda2 = float(ctx.params.lambda2)
    method = ctx.wildcards.method
    stc = apply_inverse(
        ev.data,
        inv,
        lambda2=lambda2,
        method=method,
        pick_ori=ctx.params.pick_ori,
        nave=ev.nave,
        times=ev.times,
        ch_names=list(ev.ch_names),
    )
    ds = stc.to_xarray()
    ctx.write(
        ds,
        ctx.output[0],
        subject=ctx.wildcards.subject,
        condition=ev.condition,
        condition_label=ctx.wildcards.cond,
        snr=float(ctx.params.snr),
    )


def step_snr(ctx: StepContext) -> None:
    """Estimated SNR over time for every condition (``snr.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import numpy as np
    import xarray as xr

    from .snr import estimate_snr
    from .store import load_inverse

    _ok(ctx.input.inv)
    inv = load_inverse(ctx.input.inv)
    snrs, ests, conds, labels, naves = [], [], [], [], []
    times = None
    skipped = {}
    for path in _flatten(ctx.input.evoked):
        try:
            ev = load_evoked(path)
        except UpstreamFailed as exc:  # one condition's failure (e.g. absent) spares the rest
            skipped[Path(path).name] = str(exc)
            continue
        snr, est = estimate_snr(ev.data, inv, nave=ev.nave, ch_names=list(ev.ch_names))
        snrs.append(snr)
        ests.append(est)
        conds.append(ev.condition)
        labels.append(condition_label(ev.condition))
        naves.append(ev.nave)
        times = ev.times
    if not snrs:
        raise UpstreamFailed(f"every evoked response failed: {skipped}")
    ds = xr.Dataset(
        {
            "snr": (
                ("condition", "time"),
                np.array(snrs),
                {"units": "1", "long_name": "whitened-data SNR"},
            ),
            "snr_est": (
                ("condition", "time"),
                np.array(ests),
                {"units": "1", "long_name": "estimated SNR (1/sqrt(lambda2_est))"},
            ),
            "nave": ("condition", np.array(naves, dtype=np.int64), {"units": "1"}),
        },
        coords={
            "condition": labels,
            "condition_name": ("condition", conds),
            "time": ("time", np.asarray(times), {"units": "s"}),
        },
    )
    ctx.write(ds, ctx.output[0], subject=ctx.wildcards.subject, skipped_evokeds=skipped)


def _progress_logger(what: str, every: float = 0.1):
    """A ``progress(part, done, total)`` callback that logs about every 10 %."""
    state = {"next": {}}

    def progress(part: str, done: int, total: int) -> None:
        nxt = state["next"].get(part, 0.0)
        if done >= total or done / total >= nxt:
            log.info(
                "%s %s: %d / %d sources (%.0f %%)", what, part, done, total, 100 * done / total
            )
            state["next"][part] = done / total + every

    return progress


def step_resolution(ctx: StepContext) -> None:
    """PSF/CTF resolution metrics per method, stacked on ``inverse_method`` (``resolution.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import xarray as xr

    from .resolution import resolution_metrics
    from .store import load_forward, load_inverse

    _ok(ctx.input.fwd)
    _ok(ctx.input.inv)
    fwd = load_forward(ctx.input.fwd)
    inv = load_inverse(ctx.input.inv)
    lambda2 = float(ctx.params.lambda2)
    parts = []
    for method in ctx.params.methods:
        t0 = time.perf_counter()
        ds = resolution_metrics(
            fwd,
            inv,
            lambda2=lambda2,
            method=method,
            block_size=int(ctx.params.block_size),
            progress=_progress_logger(f"resolution {method}"),
        )
        log.info("resolution %s: done in %.1f s", method, time.perf_counter() - t0)
        parts.append(ds.expand_dims(inverse_method=[method]))
    out = xr.concat(parts, dim="inverse_method", combine_attrs="drop_conflicts")
    for name in out.data_vars:
        out[name].attrs = dict(parts[0][name].attrs)
    out.attrs = {k: v for k, v in parts[0].attrs.items() if k != "method"}
    ctx.write(out, ctx.output[0], subject=ctx.wildcards.subject, lambda2=lambda2)


def _read_status(path) -> tuple[bool, str]:
    from .store import STATUS_ATTR, open_dataset

    try:
        ds = open_dataset(path)
    except Exception as exc:  # noqa: BLE001
        return False, f"unreadable: {exc}"
    if ds.attrs.get(STATUS_ATTR) == "failed":
        return False, str(ds.attrs.get("exgsrc_error"))
    return True, ""


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
    import numpy as np

    from .store import open_dataset

    used, failed, arrays, coords = [], {}, [], []
    ref = None
    for sub, path in zip(ctx.params.subjects, _flatten(ctx.input), strict=True):
        ok, why = _read_status(path)
        if not ok:
            failed[sub] = why
            continue
        ds = open_dataset(path)
        if ref is None:
            ref = ds
        elif ds["stc"].shape != ref["stc"].shape or not np.allclose(
            ds["time"].values, ref["time"].values
        ):
            failed[sub] = f"shape/time axis {ds['stc'].shape} differs from {ref['stc'].shape}"
            continue
        used.append(sub)
        arrays.append(ds["stc"].values)
        coords.append(np.stack([ds["x"].values, ds["y"].values, ds["z"].values], axis=1))
    if ref is None:
        raise ValueError(f"no subject has a usable source estimate: {failed}")
    out = ref.copy()
    out["stc"] = (ref["stc"].dims, np.mean(arrays, axis=0), dict(ref["stc"].attrs))
    out["stc"].attrs["long_name"] = f"grand average of {len(used)} subjects"
    out["stc_sd"] = (
        ref["stc"].dims,
        np.std(arrays, axis=0, ddof=1) if len(arrays) > 1 else np.zeros_like(arrays[0]),
        {"units": ref["stc"].attrs.get("units", ""), "long_name": "between-subject SD"},
    )
    mean_pos = np.mean(coords, axis=0)
    out = out.assign_coords(
        x=("source", mean_pos[:, 0], {"units": "m"}),
        y=("source", mean_pos[:, 1], {"units": "m"}),
        z=("source", mean_pos[:, 2], {"units": "m"}),
    )
    keep = {"method", "lambda2", "orientation", "condition", "condition_label", "snr"}
    out.attrs = {k: v for k, v in ref.attrs.items() if k in keep}
    ctx.write(out, ctx.output[0], subjects=used, failed_subjects=failed, n_subjects=len(used))


def _peak(ds, tmin=0.0, tmax=None):
    """(source index, time) of the largest |estimate| in the post-stimulus window."""
    import numpy as np

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

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import numpy as np

    from .store import open_dataset

    truth = json.loads(Path(ctx.input.truth).read_text())
    rows = []
    stc_paths = iter(_flatten(ctx.input.stc))
    # stc_files() order: subject, cond, method (expand's product order)
    for sub in ctx.params.subjects:
        for cond in ctx.params.conditions.values():
            for method in ctx.params.methods:
                path = next(stc_paths)
                ok, why = _read_status(path)
                if not ok:
                    rows.append((sub, cond, method, "failed", "n/a", "n/a", why))
                    continue
                ds = open_dataset(path)
                dip = truth["subjects"][sub]["dipoles"][cond]
                lat = float(dip["latency"])
                s, t_peak = _peak(ds, lat - 0.05, lat + 0.05)
                pos = np.array([ds["x"].values[s], ds["y"].values[s], ds["z"].values[s]])
                err = float(np.linalg.norm(pos - np.asarray(dip["pos"])))
                rows.append((sub, cond, method, "ok", f"{err * 1000:.2f}", f"{t_peak:.4f}", ""))
    header = ("subject", "condition", "method", "status", "error_mm", "peak_time_s", "error")
    _write_tsv(ctx.output[0], header, rows)


def _write_tsv(path, header, rows) -> None:
    esc = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
    lines = ["\t".join(header)]
    lines += ["\t".join(str(v).translate(esc) for v in row) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def step_qc_table(ctx: StepContext) -> None:
    """One row per subject with the QC figures that matter (``group/qc.tsv``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    import numpy as np

    from .store import open_dataset

    p = ctx.params
    subjects = list(p.subjects)
    n = len(subjects)
    per_sub = {k: _flatten(getattr(ctx.input, k)) for k in ("montage", "epochs", "cov", "snr")}
    res_files = _flatten(ctx.input.resolution) if ctx.input.resolution else []
    stc_files = _flatten(ctx.input.stc)
    n_stc = len(stc_files) // max(n, 1)
    truth = None
    if p.truth and Path(p.truth).exists():
        truth = json.loads(Path(p.truth).read_text())
    methods = list(p.methods)
    conds = dict(p.conditions)
    header = ["subject", "status", "failed_step", "reason", "n_channels", "n_eeg_used", "bads"]
    header += [f"epochs_{lab}" for lab in conds]
    header += ["cov_rank"] + [f"snr_peak_{lab}" for lab in conds]
    res_methods = []
    if res_files:
        for f in res_files:
            ok, _ = _read_status(f)
            if ok:
                res_methods = [str(m) for m in open_dataset(f)["inverse_method"].values]
                break
    header += [f"psf_peak_err_mm_median_{m}" for m in res_methods]
    if truth:
        header += [f"locerr_mm_mean_{m}" for m in methods]
    header += ["warnings"]
    rows = []
    for i, sub in enumerate(subjects):
        row = {h: "n/a" for h in header}
        row["subject"] = sub
        status, failed_step, reason = "ok", "", ""
        files = [(k, per_sub[k][i]) for k in ("montage", "epochs", "cov", "snr")]
        if res_files:
            files.append(("resolution", res_files[i]))
        files += [("stc", f) for f in stc_files[i * n_stc : (i + 1) * n_stc]]
        loaded, failed_stc = {}, []
        for kind, f in files:
            ok, why = _read_status(f)
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
            status = "failed" if len(failed_stc) == n_stc else "warning"
            failed_step = "stc"
            reason = f"{len(failed_stc)} of {n_stc} source estimates failed: " + "; ".join(
                f"{name}: {why}" for name, why in failed_stc
            )
        row.update(status=status, failed_step=failed_step or "", reason=reason)
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
            warns += list(m.attrs.get("warnings", []))
        if "epochs" in loaded:
            counts = loaded["epochs"].attrs.get("epoch_counts", {})
            for lab, cond in conds.items():
                c = counts.get(cond)
                if c:
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
        if truth and sub in truth["subjects"]:
            k = 0
            errs = {m: [] for m in methods}
            for cond in conds.values():
                for m in methods:
                    f = stc_files[i * n_stc + k]
                    k += 1
                    ok, _ = _read_status(f)
                    if not ok:
                        continue
                    ds = open_dataset(f)
                    dip = truth["subjects"][sub]["dipoles"][cond]
                    s_idx, _ = _peak(ds, dip["latency"] - 0.05, dip["latency"] + 0.05)
                    pos = np.array([ds[c].values[s_idx] for c in "xyz"])
                    errs[m].append(np.linalg.norm(pos - dip["pos"]) * 1000)
            for m in methods:
                if errs[m]:
                    row[f"locerr_mm_mean_{m}"] = f"{np.mean(errs[m]):.2f}"
        row["warnings"] = " | ".join(str(w) for w in warns) if warns else ""
        rows.append([row[h] for h in header])
    _write_tsv(ctx.output[0], header, rows)
