"""Steps of ``inverse.smk``: inverse operator, source estimates and SNR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..inverse import apply_inverse, make_inverse_operator
from ..io.coords import RAS_HEAD
from ..labels import condition_label
from ..store import UpstreamFailed, load_cov, load_evoked, load_forward, load_inverse
from ._run import StepContext, flatten

__all__ = ["step_inverse_operator", "step_source_estimate", "step_snr"]


def step_inverse_operator(ctx: StepContext) -> None:
    """Method-independent inverse operator (``inv.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    fwd = load_forward(ctx.input.fwd)
    cov = load_cov(ctx.input.cov)
    fwd = fwd.pick_channels(cov.ch_names)
    loose = float(ctx.params.loose)
    depth = ctx.params.depth
    inv = make_inverse_operator(fwd, cov, loose=loose, depth=depth, fixed=loose == 0.0)
    ctx.write(
        inv.to_xarray(),
        ctx.output[0],
        model=True,
        subject=ctx.wildcards.subject,
        loose=loose,
        depth=depth,
    )


def step_source_estimate(ctx: StepContext) -> None:
    """Source estimates of one condition (``desc-<method>_stc.nc``), one per method.

    One job makes every method's estimate of the condition: ``params.methods``
    names them in the order of the outputs (without it, the ``method`` wildcard
    names the one method of a one-output job). Each method is a part of its own
    (:meth:`StepContext.part`): one that fails writes its failed-status file and the
    others are still written, each file as a job of its own would have written it.

    A contrast's evoked response (``contrast`` attributes, see
    :func:`exgsrc.steps.preprocess.step_contrast`) is treated like any other: the
    inverse is applied to the difference with its effective nave, so for dSPM,
    sLORETA and eLORETA the result is the noise-normalised estimate *of the
    difference*, not the difference of the conditions' normalised estimates.
    The contrast attributes are copied to the output.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    methods = list(getattr(ctx.params, "methods", None) or [ctx.wildcards.method])
    outputs = flatten(ctx.output)
    if len(methods) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for the methods {methods}")
    ctx.set_parts({out: {"method": m} for m, out in zip(methods, outputs, strict=True)})
    inv = load_inverse(ctx.input.inv)
    ev = load_evoked(ctx.input.evoked)
    lambda2 = float(ctx.params.lambda2)
    for method, out in zip(methods, outputs, strict=True):
        with ctx.part(out):
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
            ctx.write(
                stc.to_xarray(),
                out,
                subject=ctx.wildcards.subject,
                condition=ev.condition,
                condition_label=ctx.wildcards.cond,
                snr=float(ctx.params.snr),
                coord_frame=RAS_HEAD,
                **ev.meta,
            )


def step_snr(ctx: StepContext) -> None:
    """Estimated SNR over time for every condition (``snr.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    from ..snr import estimate_snr  # scipy.special: imported by this step only

    inv = load_inverse(ctx.input.inv)
    snrs, ests, conds, labels, naves = [], [], [], [], []
    times = None
    skipped = {}
    for path in flatten(ctx.input.evoked):
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
            "nave": ("condition", _nave_array(naves), {"units": "1"}),
        },
        coords={
            "condition": labels,
            "condition_name": ("condition", conds),
            "time": ("time", np.asarray(times), {"units": "s"}),
        },
    )
    ctx.write(ds, ctx.output[0], subject=ctx.wildcards.subject, skipped_evokeds=skipped)


def _nave_array(naves) -> np.ndarray:
    """int64, or float64 when a contrast's effective nave is not a whole number."""
    if all(float(n).is_integer() for n in naves):
        return np.array(naves, dtype=np.int64)
    return np.array(naves, dtype=np.float64)
