"""Subject report sections "Head model", "Forward model" and "Noise covariance".

Reads the head model (variables ``radii``, ``conductivities``, ``center``;
attribute ``kind``), the forward model (``gain`` with coordinates ``x, y, z`` on
``source`` and ``ch_x, ch_y, ch_z`` on ``channel``; the sphere attributes
``sphere_radii``, ``sphere_center``), the noise covariance (``cov`` on
``channel`` x ``channel2``; attributes ``rank`` (-1 unknown), ``rank_estimated``,
``nfree``, ``method``, ``cov_tmin``, ``cov_tmax``) and, for the whitened baseline
check, the evoked responses (``evoked``; attributes ``condition``, ``nave``) and
the epochs' ``baseline``.
"""

from __future__ import annotations

import numpy as np

from . import _figmaps as M
from . import _figures as F
from ._context import Ctx, Result, channels, cond_label, source_geometry, sphere
from ._data import CH_XYZ, MissingInput, StepFailed, variable, xyz
from ._html import dl, notice, table

__all__ = ["covariance_section", "forward_section", "head_section", "whitened_gfp"]


def whitened_gfp(data, nave, cov, rank=None):
    """Whitened global field power (as MNE's ``plot_white``): ~1 where only noise.

    Both data and covariance are projected onto the average reference, the
    covariance is whitened through its ``rank`` leading eigenvectors, and the
    sum of squared whitened channels is divided by the rank.

    Parameters
    ----------
    data : ndarray, shape (n_ch, n_times)
        Evoked data (V).
    nave : int
        Number of averaged epochs (noise scales as 1/sqrt(nave)).
    cov : ndarray, shape (n_ch, n_ch)
        Noise covariance of single epochs (V²), same channel order.
    rank : int | None
        Rank to whiten with; estimated from the spectrum if None.

    Returns
    -------
    gfp : ndarray, shape (n_times,)
        Chi-square per degree of freedom (dimensionless).
    rank : int
    """
    data = np.asarray(data, float)
    cov = np.asarray(cov, float)
    n = cov.shape[0]
    proj = np.eye(n) - 1.0 / n
    c = proj @ cov @ proj
    w, u = np.linalg.eigh((c + c.T) / 2)
    order = np.argsort(w)[::-1]
    w, u = w[order], u[:, order]
    est = int(np.sum(w > w[0] * 1e-10)) if w[0] > 0 else 0
    r = min(int(rank) if rank is not None else est, n - 1, est)
    if r < 1:
        raise ValueError("noise covariance has rank 0 after average reference")
    white = (u[:, :r].T / np.sqrt(w[:r])[:, None]) @ (proj @ data) * np.sqrt(max(nave, 1))
    return np.sum(white**2, axis=0) / r, r


def _mm(x):
    return float(x) * 1e3


def head_section(ctx: Ctx) -> Result:
    """Section "Head model": the sphere and the electrodes' distance from its scalp.

    Parameters
    ----------
    ctx : Ctx
        Reads the channels used (montage, else forward) and the sphere (head
        model, else the forward's sphere attributes, else a fit to the electrodes).

    Returns
    -------
    Result
        Warns about an electrode more than 10 mm off the scalp; summary key
        ``max_electrode_distance_mm``.
    """
    res = Result()
    names, pos = channels(ctx)
    center, radii, origin = sphere(ctx, pos)
    scalp = max(radii)
    dist = np.linalg.norm(pos - center, axis=1) - scalp  # recomputed: same definition as the
    # head model's electrode_distance, and available when only a forward file exists
    ctx.summary["max_electrode_distance_mm"] = float(np.max(np.abs(dist)) * 1e3)
    worst = np.argsort(-np.abs(dist))[:5]
    parts = [
        dl(
            [
                ("sphere from", origin),
                ("centre (mm)", ", ".join(f"{c * 1e3:.1f}" for c in center)),
                ("radii (mm, inner to outer)", ", ".join(f"{r * 1e3:.1f}" for r in sorted(radii))),
                (
                    "electrode distance from scalp (mm)",
                    f"median {np.median(dist) * 1e3:.2f}, max |d| {np.max(np.abs(dist)) * 1e3:.2f}",
                ),
            ]
        )
    ]
    parts.append(
        table(
            ["farthest electrodes", "distance from scalp (mm)"],
            [[names[i], round(_mm(dist[i]), 2)] for i in worst],
        )
    )
    if np.max(np.abs(dist)) > 0.01:
        res.warnings.append(
            f"electrode {names[worst[0]]} is {_mm(dist[worst[0]]):.1f} mm from the scalp sphere"
        )
    parts.append(ctx.img(lambda: F.fig_sensors_sphere(pos, center, radii), "electrodes on sphere"))
    res.body = "\n".join(parts)
    return res


def forward_section(ctx: Ctx) -> Result:
    """Section "Forward model": gain matrix size, sensitivity per source and per channel.

    Parameters
    ----------
    ctx : Ctx
        Reads the forward model (and the sphere's centre for the sensor map).

    Returns
    -------
    Result
        Failed if the gain matrix holds non-finite values.
    """
    res = Result()
    ds = ctx.ds("fwd")
    g = variable(ds, "gain", "forward")
    dims = [d for d in ("channel", "source", "orientation") if d in g.dims]
    arr = np.asarray(g.transpose(*dims).values, float)
    if arr.ndim == 3:
        src_norm = np.sqrt(np.sum(arr**2, axis=(0, 2)))
        ch_norm = np.sqrt(np.sum(arr**2, axis=(1, 2)))
    else:
        src_norm = np.linalg.norm(arr, axis=0)
        ch_norm = np.linalg.norm(arr, axis=1)
    src_pos = xyz(ds, "source")
    ch_pos = xyz(ds, "channel", CH_XYZ)
    center, radii, _ = sphere(ctx, ch_pos)
    tris, _, _ = source_geometry(ctx, src_pos)
    ratio = float(src_norm.max() / max(src_norm.min(), 1e-300))
    parts = [
        dl(
            [
                (
                    "shape",
                    f"{arr.shape[0]} channels × {src_pos.shape[0]} sources"
                    + (f" × {arr.shape[2]} orientations" if arr.ndim == 3 else " (fixed)"),
                ),
                (
                    "source gain norm (V/(A·m))",
                    f"min {src_norm.min():.3g}, median {np.median(src_norm):.3g}, max {src_norm.max():.3g}",
                ),
                ("max/min sensitivity ratio", f"{ratio:.3g}"),
            ]
        )
    ]
    if not np.all(np.isfinite(arr)):
        res.status = "failed"
        parts.insert(0, notice("failed", "forward", "gain matrix contains non-finite values"))
    parts.append(
        ctx.img(
            lambda: M.fig_forward(ch_pos, center, ch_norm, src_pos, src_norm, tris, max(radii)),
            "forward sensitivity",
        )
    )
    res.body = "\n".join(parts)
    return res


def _cov_rank(ds, eigvals) -> tuple[int, str]:
    """Rank of the covariance (the file's ``rank``, else ``rank_estimated``, else here)."""
    for key, src in (("rank", ""), ("rank_estimated", " (estimated by the workflow)")):
        try:
            v = int(ds.attrs.get(key))
        except (TypeError, ValueError):
            continue
        if v >= 0:  # -1: unknown
            return v, src
    est = int(np.sum(eigvals > eigvals[0] * 1e-10)) if eigvals[0] > 0 else 0
    return est, " (estimated here from the eigenvalues)"


def _baseline(ctx: Ctx, cov_ds, t) -> tuple[float, float]:
    """Baseline window (s): the epochs' ``baseline``, else the covariance's window."""
    ep = ctx.opt("epochs")
    bl = ep.attrs.get("baseline") if ep is not None else None
    if bl is None and "cov_tmin" in cov_ds.attrs:
        bl = [cov_ds.attrs["cov_tmin"], cov_ds.attrs.get("cov_tmax")]
    b0, b1 = (t[0], 0.0)
    if isinstance(bl, list | tuple) and len(bl) == 2:
        b0 = t[0] if bl[0] is None else float(bl[0])
        b1 = 0.0 if bl[1] is None else float(bl[1])
    return b0, b1


def _whitened_curves(ctx: Ctx, ds, cov, names, rank) -> tuple[dict, dict, tuple | None]:
    """Whitened GFP per condition: curves {label: (t, gfp)}, baseline means, baseline."""
    curves, base_means, base = {}, {}, None
    pos_of = {n: i for i, n in enumerate(names)}
    for cond in ctx.inputs["evokeds"]:
        try:
            ev_ds = ctx.ds(("evoked", cond))
        except (MissingInput, StepFailed, ValueError):
            continue
        da = variable(ev_ds, "evoked", "evoked")
        common = [n for n in (str(x) for x in da["channel"].values) if n in pos_of]
        if len(common) < 2:
            continue
        x = np.asarray(da.sel(channel=common).transpose("channel", "time").values, float)
        idx = [pos_of[n] for n in common]
        nave = int(ev_ds.attrs.get("nave") or 1)
        g, _ = whitened_gfp(x, nave, cov[np.ix_(idx, idx)], min(rank, len(common) - 1))
        t = np.asarray(da["time"].values, float)
        label = cond_label(ev_ds, cond)
        curves[label] = (t, g)
        base = _baseline(ctx, ds, t)
        m = (t >= base[0]) & (t <= base[1])
        if m.any():
            base_means[label] = float(np.mean(g[m]))
    return curves, base_means, base


def covariance_section(ctx: Ctx) -> Result:
    """Section "Noise covariance": rank, spectrum, and the whitened baseline check.

    Parameters
    ----------
    ctx : Ctx
        Reads the noise covariance, the evoked responses and the epochs' baseline.

    Returns
    -------
    Result
        Warns about a low rank or a mean whitened baseline GFP outside the
        configured limits (``report.min_baseline_gfp`` to ``report.max_baseline_gfp``,
        0.25 to 2 by default); summary keys ``cov_rank``, ``white_gfp_baseline``
        (the largest condition's, the one that matters) and
        ``white_gfp_baseline_by_condition``.
    """
    res = Result()
    ds = ctx.ds("cov")
    c = variable(ds, "cov", "noise covariance")
    names = [str(x) for x in ds["channel"].values]
    cov = np.asarray(c.values, float)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be square, has shape {cov.shape}")
    ev = np.sort(np.linalg.eigvalsh((cov + cov.T) / 2))[::-1]
    rank, rank_src = _cov_rank(ds, ev)
    ctx.summary["cov_rank"] = rank
    parts = [
        dl(
            [
                ("channels", len(names)),
                ("method", ds.attrs.get("method", "not recorded")),
                ("degrees of freedom (nfree)", ds.attrs.get("nfree", "not recorded")),
                ("rank", f"{rank}{rank_src}"),
                (
                    "condition number (within rank)",
                    f"{ev[0] / ev[max(rank - 1, 0)]:.3g}" if rank else "–",
                ),
            ]
        )
    ]
    if rank < len(names) - 5:
        res.warnings.append(f"covariance rank {rank} is low for {len(names)} channels")
    parts.append(ctx.img(lambda: F.fig_covariance(cov, ev, rank), "noise covariance"))
    curves, base_means, base = _whitened_curves(ctx, ds, cov, names, rank)
    if curves:
        lo, hi = ctx.opts.min_baseline_gfp, ctx.opts.max_baseline_gfp
        parts.append(
            "<h3>Whitened baseline check</h3><p>The whitened global field power (GFP) of "
            "pure noise is 1: it stays near 1 in the baseline if the noise covariance "
            "describes the baseline noise of the averaged epochs. Below 1 the covariance "
            "overestimates it (as regularisation does); above 1 it underestimates it "
            "(activity locked to the events in the baseline, too few epochs for the "
            "covariance, non-stationary noise), and source estimates are too large and "
            "too spread. A mean baseline value outside "
            f"{lo:g}&ndash;{hi:g} is flagged (<code>report.min_baseline_gfp</code>, "
            "<code>report.max_baseline_gfp</code>).</p>"
        )
        bad = {k: v for k, v in base_means.items() if not lo <= v <= hi}
        parts.append(
            table(
                ["condition", "mean whitened GFP in baseline", "flag"],
                [
                    [k, round(v, 3), "outside the limits" if k in bad else "ok"]
                    for k, v in base_means.items()
                ],
            )
        )
        for k, v in bad.items():
            side = f"above {hi:g}" if v > hi else f"below {lo:g}"
            res.warnings.append(
                f"whitened baseline GFP of condition {k} is {v:.2f} ({side}; noise alone gives 1)"
            )
        worst = max(base_means.values(), key=lambda v: abs(np.log(max(v, 1e-12))), default=None)
        ctx.summary["white_gfp_baseline"] = None if worst is None else float(worst)
        ctx.summary["white_gfp_baseline_by_condition"] = dict(base_means)
        parts.append(
            ctx.img(
                lambda: F.fig_whitened_gfp(curves, base, (lo, hi)), "whitened GFP per condition"
            )
        )
    else:
        parts.append(
            notice(
                "missing",
                "whitened baseline check",
                "no evoked data sharing channels with the covariance",
            )
        )
    res.body = "\n".join(parts)
    return res
