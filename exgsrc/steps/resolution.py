"""Step of ``resolution.smk``: PSF/CTF resolution metrics of each inverse method."""

from __future__ import annotations

import logging
import time

import xarray as xr

from ..io.coords import RAS_HEAD
from ..resolution import resolution_metrics
from ..store import load_forward, load_inverse
from ._run import StepContext, progress_logger

__all__ = ["step_resolution"]

log = logging.getLogger("exgsrc")


def step_resolution(ctx: StepContext) -> None:
    """PSF/CTF resolution metrics per method, stacked on ``inverse_method`` (``resolution.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
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
            progress=progress_logger(f"resolution {method}"),
        )
        log.info("resolution %s: done in %.1f s", method, time.perf_counter() - t0)
        parts.append(ds.expand_dims(inverse_method=[method]))
    out = xr.concat(parts, dim="inverse_method", combine_attrs="drop_conflicts")
    for name in out.data_vars:
        out[name].attrs = dict(parts[0][name].attrs)
    out.attrs = {k: v for k, v in parts[0].attrs.items() if k != "method"}
    ctx.write(
        out, ctx.output[0], subject=ctx.wildcards.subject, lambda2=lambda2, coord_frame=RAS_HEAD
    )
