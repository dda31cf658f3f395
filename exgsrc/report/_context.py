"""What every section of the subject report shares: its inputs, their reading, common helpers.

A section is a function ``section(ctx) -> Result``: it reads inputs through
:meth:`Ctx.ds` (cached, so each file is read once per report), adds numbers to
``ctx.summary`` and returns its HTML body, status and warnings. The section modules
(``sec_*``) import this module only, never :mod:`exgsrc.report.subject`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..store import FILE_SUFFIXES
from . import _figures as F
from ._data import CH_XYZ, XYZ, MissingInput, StepFailed, failure_block, load, xyz
from ._html import fig_to_img, worst_status
from ._options import Options

__all__ = [
    "FILE_KINDS",
    "Ctx",
    "Result",
    "blocks",
    "channels",
    "cond_label",
    "baseline_window",
    "make_ctx",
    "region_name",
    "source_geometry",
    "sphere",
    "used_mask",
]

#: single-file inputs of a subject, as keyword arguments of the report functions
FILE_KINDS = tuple(k for k in FILE_SUFFIXES if k not in ("evoked", "stc"))

#: names of the inputs in messages
_WHAT = {
    "montage": "montage",
    "headmodel": "head model",
    "src": "source space",
    "fwd": "forward",
    "epochs": "epochs",
    "cov": "noise covariance",
    "inv": "inverse operator",
    "snr": "SNR",
    "resolution": "resolution",
}

#: inputs of which only attributes and coordinates are read (epochs can be large)
_ATTRS_ONLY = {"epochs", "inv"}


@dataclass
class Result:
    """What a section returns: status, HTML body, warnings (change the status) and notes."""

    status: str = "ok"
    body: str = ""
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # shown and listed, but do not change status


@dataclass
class Ctx:
    """One subject's report being built: inputs, truth, configuration, cache, summary."""

    subject: str
    task: str | None
    inputs: dict
    truth: dict
    config: dict | None
    figures: bool
    opts: Options = field(default_factory=Options)
    cache: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def ds(self, key):
        """The dataset of an input, read once.

        Parameters
        ----------
        key : str | tuple
            A file kind (:data:`FILE_KINDS`), ``("evoked", condition)`` or
            ``("stc", condition, method)``.

        Returns
        -------
        xarray.Dataset

        Raises
        ------
        MissingInput, StepFailed, ValueError
            As :func:`exgsrc.report._data.load` (the error is cached too).
        """
        if key not in self.cache:
            if isinstance(key, tuple):
                kind, name = key[0], key[1:]
                group = self.inputs["evokeds" if kind == "evoked" else "stcs"]
                obj = group.get(name[0] if kind == "evoked" else name)
                what, attrs_only = f"{kind} {'/'.join(map(str, name))}", False
            else:
                obj, what, attrs_only = self.inputs.get(key), _WHAT[key], key in _ATTRS_ONLY
            try:
                self.cache[key] = load(obj, what, attrs_only=attrs_only)
            except (MissingInput, StepFailed, ValueError) as err:
                self.cache[key] = err
        v = self.cache[key]
        if isinstance(v, Exception):
            raise v
        return v

    def opt(self, key):
        """The dataset of an input, or None if it is missing, failed or unreadable.

        Parameters
        ----------
        key : str | tuple
            As in :meth:`ds`.

        Returns
        -------
        xarray.Dataset | None
        """
        try:
            return self.ds(key)
        except (MissingInput, StepFailed, ValueError):
            return None

    def img(self, make: Callable, alt: str) -> str:
        """An embedded figure (``make()`` returns it), or nothing in a summary-only run.

        Parameters
        ----------
        make : callable
            Builds the matplotlib Figure.
        alt : str
            Alternative text.

        Returns
        -------
        str
        """
        if not self.figures:
            return ""
        with F.styled():
            return fig_to_img(make(), alt=alt)


def cond_label(ds, key) -> str:
    """Condition name (``condition`` attribute, the original ``trial_type``) of a dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        An evoked response or source estimate.
    key : str
        The condition's path-safe label, used if the attribute is absent.

    Returns
    -------
    str
    """
    return str(ds.attrs.get("condition", key))


def used_mask(mont) -> np.ndarray:
    """Boolean mask of the channels used for source imaging (montage ``used`` coordinate).

    Parameters
    ----------
    mont : xarray.Dataset
        The montage.

    Returns
    -------
    ndarray of bool, shape (n_channels,)
    """
    if "used" not in mont.variables or mont["used"].dims != ("channel",):
        raise ValueError(f"montage {mont.encoding.get('source', '')} has no 'used' coordinate")
    return np.asarray(mont["used"].values).astype(bool)


def channels(ctx: Ctx):
    """(names, positions (n, 3) m) of the channels used: from the montage, else the forward.

    Parameters
    ----------
    ctx : Ctx

    Returns
    -------
    names : list of str
    pos : ndarray, shape (n, 3)
    """
    first_err = None
    for key, coords in (("montage", XYZ), ("fwd", CH_XYZ)):
        try:
            ds = ctx.ds(key)
            pos = xyz(ds, "channel", coords)
        except MissingInput:
            continue
        except (StepFailed, ValueError) as err:
            first_err = first_err or err
            continue
        names = np.array([str(c) for c in ds["channel"].values], dtype=object)
        used = used_mask(ds) if key == "montage" else np.ones(len(names), bool)
        return list(names[used]), pos[used]
    if first_err is not None:  # say why, e.g. the montage step failed
        raise first_err
    raise MissingInput("no input with channel positions (montage or forward)")


def sphere(ctx: Ctx, ch_pos):
    """Sphere (center, radii, origin text) from the head model, the forward, or a fit here.

    Parameters
    ----------
    ctx : Ctx
    ch_pos : ndarray, shape (n, 3)
        Electrode positions, for the fit when no input holds a sphere.

    Returns
    -------
    center : ndarray, shape (3,)
    radii : list of float
    origin : str
    """
    hm = ctx.opt("headmodel")
    if hm is not None:
        origin = f"head model file ({hm.attrs.get('kind', '')})"
        cond = ", ".join(f"{float(c):.4g}" for c in hm["conductivities"].values)
        origin += f"; conductivities {cond} S/m (inner to outer)"
        center = np.asarray(hm["center"].values, float)
        return center, [float(r) for r in hm["radii"].values], origin
    fwd = ctx.opt("fwd")
    if fwd is not None and "sphere_radii" in fwd.attrs:  # SphereModel.to_attrs
        radii = [float(r) for r in np.atleast_1d(fwd.attrs["sphere_radii"])]
        center = np.asarray(fwd.attrs["sphere_center"], float).ravel()[:3]
        return center, radii, "fwd file attributes"
    center, r = F.fit_sphere(ch_pos)
    return center, [r], "least-squares fit to the electrodes (no sphere in the inputs)"


def blocks(res: Result, keys, build: Callable, what: str, plural: str) -> list:
    """HTML of a section made of blocks, one per condition (or condition and method).

    A block that cannot be built becomes a "missing" or "failed" notice
    (:func:`exgsrc.report._data.failure_block`). When some blocks failed but others
    are usable, the subject still has results: the section is a warning naming the
    failed blocks; when all failed, it failed.

    Parameters
    ----------
    res : Result
        Gets the status (and the warning).
    keys : list
        One key per block: a condition, or a (condition, method) tuple.
    build : callable
        ``build(key)`` returns the block's HTML parts (list of str).
    what, plural : str
        Name of one block and of several, for notices and the warning.

    Returns
    -------
    list of str
    """
    parts, missing, failed = [], [], []
    for key in keys:
        try:
            parts += build(key)
        except Exception as err:  # noqa: BLE001 - shown in the report
            name = "/".join(map(str, key)) if isinstance(key, tuple) else str(key)
            status, block = failure_block(err, f"{what} {name}")
            if status == "missing":
                missing.append(status)
            else:
                failed.append(name)
            parts.append(block)
    if failed and len(failed) < len(keys):
        res.warnings.append(f"{len(failed)} of {len(keys)} {plural} failed: {', '.join(failed)}")
        res.status = worst_status([*missing, "warning"])
    else:
        res.status = worst_status(missing + ["failed"] * len(failed))
    return parts


def _read_truth(obj, subject) -> dict:
    """True dipoles per condition: ``{condition: {"pos": ndarray (n, 3) m, "latency": s}}``.

    ``obj`` is a dict ``{condition: positions}`` or ``{condition: {"pos": ...,
    "latency": s}}``, or a JSON file holding one, or the demo cohort's
    ``code/demo_truth.json`` (``{"subjects": {label: {"dipoles": {condition:
    {"pos": [x, y, z], "latency": s}}}}}``).
    """
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        p = Path(obj)
        obj = json.loads(p.read_text()) if p.is_file() else {}
        if isinstance(obj, dict) and "subjects" in obj:
            sub = str(subject).removeprefix("sub-")
            obj = (obj["subjects"].get(sub) or {}).get("dipoles", {})
    out = {}
    for cond, v in obj.items() if isinstance(obj, dict) else ():
        pos, lat = (v.get("pos"), v.get("latency")) if isinstance(v, dict) else (v, None)
        try:
            arr = np.atleast_2d(np.asarray(pos, float))
        except (TypeError, ValueError):
            continue
        if arr.shape[-1] == 3 and arr.size:
            out[str(cond)] = {"pos": arr, "latency": None if lat is None else float(lat)}
    return out


def baseline_window(ctx: Ctx, times) -> tuple[float, float] | None:
    """The epochs' baseline (s) on a time axis (``baseline`` attribute), or None.

    Parameters
    ----------
    ctx : Ctx
    times : ndarray, shape (n_times,)
        Seconds.

    Returns
    -------
    (float, float) | None
    """
    ep = ctx.opt("epochs")
    bl = ep.attrs.get("baseline") if ep is not None else None
    if not isinstance(bl, list | tuple) or len(bl) != 2:
        return None
    return (
        float(times[0]) if bl[0] is None else float(bl[0]),
        0.0 if bl[1] is None else float(bl[1]),
    )


def source_geometry(ctx: Ctx, src_pos):
    """What a source map needs besides the values: triangles, head centre and radius.

    Parameters
    ----------
    ctx : Ctx
        Reads the source space (``tris``), the channels and the sphere.
    src_pos : ndarray, shape (n_src, 3)
        The positions of the map's sources (m).

    Returns
    -------
    tris : ndarray of int, shape (n_tris, 3) | None
        The source space's triangles if it has the same sources; None draws
        maximum-intensity projections.
    center : ndarray, shape (3,)
    radius : float
        Scalp radius (m).
    """
    tris = None
    src = ctx.opt("src")
    if src is not None and "tris" in src.variables:
        try:
            same = np.allclose(xyz(src, "source"), src_pos, atol=1e-6)
        except (MissingInput, ValueError):
            same = False
        if same:
            tris = np.asarray(src["tris"].values, int)
    try:
        _, ch_pos = channels(ctx)
        center, radii, _ = sphere(ctx, ch_pos)
        return tris, np.asarray(center, float), float(max(radii))
    except (MissingInput, StepFailed, ValueError):
        center = np.asarray(src_pos, float).mean(axis=0)
        r = float(np.max(np.linalg.norm(np.asarray(src_pos) - center, axis=1))) / 0.7
        return tris, center, r


def region_name(pos, center) -> str:
    """Rough place of a source from its direction seen from the head centre.

    Hemisphere (left, right or midline) and lobe-like area (frontal, central,
    parietal, occipital, temporal) from the direction only, for a reader to check
    a result at a glance; not an anatomical label.

    Parameters
    ----------
    pos : ndarray, shape (3,)
        Position (m), RAS head frame.
    center : ndarray, shape (3,)
        Head centre (m).

    Returns
    -------
    str
    """
    d = np.asarray(pos, float) - np.asarray(center, float)
    n = np.linalg.norm(d)
    if n == 0:
        return "centre"
    x, y, z = d / n
    side = "left" if x < -0.25 else "right" if x > 0.25 else "midline"
    if abs(x) > 0.55 and z < 0.6 and y > -0.6:
        area = "temporal"
    elif y > 0.35:
        area = "frontal"
    elif y < -0.6:
        area = "occipital"
    elif y < -0.1:
        area = "parietal"
    else:
        area = "central"
    return f"{side} {area}"


def make_ctx(subject, task, files, evokeds, stcs, truth, config, figures, options=None) -> Ctx:
    """The context of one subject's report.

    Parameters
    ----------
    subject, task, evokeds, stcs, truth, config
        As in :func:`exgsrc.report.subject_report`.
    files : dict
        Single-file inputs by kind (:data:`FILE_KINDS`).
    figures : bool
        Draw figures (False for a summary only).
    options : mapping | Options | None
        The ``report`` options (:class:`exgsrc.report._options.Options`); None:
        those of ``config``, else the defaults.

    Returns
    -------
    Ctx
    """
    unknown = set(files) - set(FILE_KINDS)
    if unknown:
        raise ValueError(f"unknown input kind(s) {sorted(unknown)}; expected {FILE_KINDS}")
    inputs = {k: files.get(k) for k in FILE_KINDS}
    inputs.update(evokeds=dict(evokeds or {}), stcs=dict(stcs or {}))
    return Ctx(
        subject=str(subject),
        task=task,
        inputs=inputs,
        truth=_read_truth(truth, subject),
        config=config,
        figures=figures,
        opts=Options.from_config(options if options is not None else config),
        summary={"subject": str(subject)},
    )
