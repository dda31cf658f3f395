"""Steps of ``headmodel.smk``: montage, sphere head model, source space, forward model."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..forward import SphereModel, make_sphere_forward_free
from ..io.bids import read_montage, read_recording
from ..io.coords import RAS_HEAD
from ..scalp import project_to_sphere
from ..source_space import grid_source_space, ico_source_space
from ..store import load_montage, load_source_space, load_sphere, open_checked, used_channels
from ._run import StepContext
from .preprocess import NONFINITE_POLICY, recordings

__all__ = ["step_montage", "step_head_model", "step_source_space", "step_forward"]


def step_montage(ctx: StepContext) -> None:
    """Channel table and electrode positions of one subject (``montage.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    p = ctx.params
    checks = p.data_checks
    rec = recordings(p.bids_root, ctx.wildcards.subject, p.task, p.selection)[0]
    raw = read_recording(rec, on_nonfinite=NONFINITE_POLICY[checks["nonfinite"]])
    suspect = {}
    if checks["suspect_channels"] == "mark_bad":
        suspect = {
            ch: why for ch, why in raw.meta.get("suspect_channels", []) if ch not in raw.bads
        }
    eeg_good = [
        n
        for n, t in zip(raw.ch_names, raw.ch_types, strict=True)
        if t == "eeg" and n not in raw.bads and n not in suspect
    ]
    mont = read_montage(rec, ch_names=eeg_good, fallback=p.fallback)
    lut = dict(zip(mont.ch_names, mont.pos, strict=True))
    pos = np.array([lut.get(n, (np.nan,) * 3) for n in raw.ch_names], float).reshape(-1, 3)
    used = np.array([n in lut for n in raw.ch_names], bool)
    status = ["bad" if n in raw.bads or n in suspect else "good" for n in raw.ch_names]
    reason = [
        _exclusion_reason(n, t, raw.bads, suspect, lut)
        for n, t in zip(raw.ch_names, raw.ch_types, strict=True)
    ]
    if used.sum() < 4:
        # say why the others are out (e.g. every channel "full scale": a wrong sample format)
        why_out: dict[str, list[str]] = {}
        for n, t, why in zip(raw.ch_names, raw.ch_types, reason, strict=True):
            if why and t == "eeg":
                why_out.setdefault(why, []).append(n)
        raise ValueError(
            f"{rec.data_path}: only {int(used.sum())} good EEG channels with positions "
            f"(need >= 4): {sorted(lut)}; excluded: "
            + "; ".join(f"{why}: {', '.join(names)}" for why, names in why_out.items())
        )
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
        coord_frame_original=mont.meta["coord_frame_original"],
        coord_transform=np.asarray(mont.meta["coord_transform"]).tolist(),
        fiducials=mont.meta.get("fiducials", {}),
        warnings=list(raw.warnings) + list(mont.meta.get("warnings", [])),
        n_channels_used=int(used.sum()),
    )


def _exclusion_reason(name, ch_type, bads, suspect, positions) -> str:
    """Why a channel is not used for source imaging ("" when it is)."""
    if name in bads:
        return "bad"
    if name in suspect:
        return f"bad: {suspect[name]}"
    if ch_type != "eeg":
        return "not EEG"
    return "" if name in positions else "no position"


def step_head_model(ctx: StepContext) -> None:
    """Sphere head model and the electrode positions the forward uses (``headmodel.nc``).

    The sphere is fitted to the electrodes (leaving out the face, or face and neck,
    by ``head_model.fit_exclude``) or fixed by config. With ``head_model.electrodes:
    project`` (default) every electrode is moved radially onto the scalp sphere
    (as FieldTrip and Brainstorm do); its projection distance is stored, and
    electrodes moved farther than ``head_model.max_projection`` are a recorded
    warning naming them. With ``as_is`` the forward evaluates them where they are
    (MNE-Python's convention).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    cfg = ctx.params.head_model
    mont = load_montage(ctx.input.montage)
    names = used_channels(mont)
    pos = mont["pos"].sel(channel=names).values
    sphere = _sphere_from_config(cfg, pos, names)
    projection = project_to_sphere(pos, sphere, names, float(cfg["max_projection"]))
    forward_pos = projection.pos if cfg["electrodes"] == "project" else pos
    fit = sphere.fit_result
    fit_used = np.array(fit.used if fit is not None else [True] * len(names), dtype=np.int8)
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
                projection.radial_offset,
                {"units": "m", "long_name": "electrode distance from the scalp shell"},
            ),
            "projection_distance": (
                "channel",
                projection.distance if cfg["electrodes"] == "project" else np.zeros(len(names)),
                {"units": "m", "long_name": "distance the electrode was moved onto the scalp"},
            ),
            "forward_pos": (
                ("channel", "xyz"),
                forward_pos,
                {"units": "m", "long_name": "electrode position used by the forward model"},
            ),
            "fit_used": ("channel", fit_used, {"long_name": "used for the sphere fit"}),
        },
        coords={"shell": np.arange(sphere.n_shells), "xyz": ["x", "y", "z"], "channel": names},
    )
    warnings = list(projection.warnings) if cfg["electrodes"] == "project" else []
    ctx.write(
        ds,
        ctx.output[0],
        model=True,
        kind=cfg["kind"],
        subject=ctx.wildcards.subject,
        electrodes=cfg["electrodes"],
        sphere_fit=fit.to_dict() if fit is not None else None,
        warnings=warnings,
        coord_frame=RAS_HEAD,
    )


def _sphere_from_config(cfg, pos, names) -> SphereModel:
    """The subject's sphere: fitted to the electrodes, or fixed by ``head_model``."""
    rel = np.asarray(cfg["relative_radii"], float)
    if not np.isclose(rel[-1], 1.0):
        raise ValueError(
            f"config head_model.relative_radii must end with 1.0 (scalp), got {rel.tolist()}"
        )
    template = SphereModel(radii=tuple(rel * 0.09), conductivities=tuple(cfg["conductivities"]))
    if cfg["kind"] == "fit":
        exclude = None if cfg["fit_exclude"] == "none" else cfg["fit_exclude"]
        return template.fit(pos, exclude=exclude, ch_names=names)
    if cfg.get("radius") is None or cfg.get("center") is None:
        raise ValueError("config head_model.kind=fixed needs head_model.radius and .center")
    return SphereModel(
        radii=tuple(rel * float(cfg["radius"])),
        conductivities=tuple(cfg["conductivities"]),
        center=tuple(cfg["center"]),
    )


def step_source_space(ctx: StepContext) -> None:
    """Source space scaled to the subject's sphere (``src.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    cfg = ctx.params.source_space
    sphere = load_sphere(ctx.input.head_model)
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
    ctx.write(
        src.to_xarray(),
        ctx.output[0],
        model=True,
        subject=ctx.wildcards.subject,
        coord_frame=RAS_HEAD,
    )


def step_forward(ctx: StepContext) -> None:
    """Free-orientation sphere forward (``fwd.nc``).

    The electrodes are those of the head model, at the positions it chose for the
    forward (``forward_pos``: projected onto the scalp, or as measured).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    head = open_checked(ctx.input.head_model)
    names = [str(c) for c in head["channel"].values]
    pos = head["forward_pos"].transpose("channel", "xyz").values
    sphere = load_sphere(ctx.input.head_model).with_berg_scherg()
    src = load_source_space(ctx.input.src)
    fwd = make_sphere_forward_free(pos, src, sphere, ch_names=names)
    ctx.write(
        fwd.to_xarray(),
        ctx.output[0],
        model=True,
        subject=ctx.wildcards.subject,
        warnings=list(fwd.meta.get("warnings", [])),
        coord_frame=RAS_HEAD,
    )
