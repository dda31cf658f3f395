"""Step of ``statistics.smk``: one cohort permutation test over the subjects' source estimates.

Sources are matched by index across subjects, as for the grand averages (every
subject's source space is the same template scaled to the subject's head); the
``x, y, z`` coordinates of the result are the subjects' mean positions. Failed
subjects (failed-status files) are skipped and listed; fewer than 3 usable
subjects fail the step (recorded by the failure policy).
"""

from __future__ import annotations

import numpy as np

from ..store import (
    load_source_space,
    mean_source_positions,
    read_cohort_estimates,
)
from ._run import StepContext, flatten

__all__ = [
    "MIN_SUBJECTS",
    "label_clusters",
    "run_test",
    "step_statistics",
    "summarise_clusters",
    "statistic_data",
]

#: Fewest usable subjects of a cohort test.
MIN_SUBJECTS = 3


def _magnitude(da) -> np.ndarray:
    """(source, time) values of a source estimate (vector estimates: the norm)."""
    if "orientation" in da.dims:
        da = da.transpose("source", "orientation", "time")
        return np.linalg.norm(np.asarray(da.values, float), axis=1)
    return np.asarray(da.transpose("source", "time").values, float)


def _window(times, t0, t1, what) -> np.ndarray:
    eps = 1e-9
    sel = (times >= t0 - eps) & (times <= t1 + eps)
    if not sel.any():
        raise ValueError(
            f"{what} [{t0}, {t1}] s has no sample (epoch samples {times[0]:.4g}..{times[-1]:.4g} s)"
        )
    return sel


def statistic_data(stcs, kind, times, window, baseline=None) -> np.ndarray:
    """Per-subject maps to test, shape ``(n_subjects, n_times_window, n_sources)``.

    Parameters
    ----------
    stcs : list of list of ndarray, shape (n_sources, n_times)
        Per subject, its estimates of the test's conditions ([A, B] or [A]).
    kind : {"paired", "baseline"}
        ``paired``: ``A - B`` in the window; ``baseline``: ``A`` minus the subject's
        mean of ``A`` over the baseline window, in the window.
    times : ndarray, shape (n_times,)
    window : (float, float)
        Tested window (s).
    baseline : (float, float) | None
        Baseline window (s) for ``kind="baseline"``.

    Returns
    -------
    X : ndarray
    """
    win = _window(times, *window, "the window tmin/tmax")
    out = []
    for maps in stcs:
        if kind == "paired":
            d = maps[0] - maps[1]
        elif kind == "baseline":
            base = _window(times, *baseline, "the baseline window")
            d = maps[0] - maps[0][:, base].mean(axis=1, keepdims=True)
        else:
            raise ValueError(f"unknown test kind {kind!r} (paired | baseline)")
        out.append(d[:, win].T)
    return np.stack(out)


def _st_graph(adjacency, n_times: int):
    """Sparse (time x source) neighbour graph: adjacent sources, and neighbouring samples."""
    from scipy import sparse

    a = sparse.csr_array(adjacency)
    n_src = a.shape[0]
    eye_t = sparse.eye_array(n_times, format="csr")
    steps = sparse.diags_array(
        [np.ones(max(n_times - 1, 0)), np.ones(max(n_times - 1, 0))], offsets=[-1, 1]
    )
    return (sparse.kron(eye_t, a) + sparse.kron(steps, sparse.eye_array(n_src))).tocsr()


def label_clusters(mask, t_obs, adjacency) -> np.ndarray:
    """Connected same-sign components of a ``(time, source)`` mask, numbered from 1.

    Parameters
    ----------
    mask : ndarray of bool, shape (n_times, n_sources)
    t_obs : ndarray, shape (n_times, n_sources)
        Signs split the components (positive and negative apart).
    adjacency : sparse matrix, shape (n_sources, n_sources)

    Returns
    -------
    labels : ndarray of int32, shape (n_times, n_sources)
        0 outside the mask.
    """
    from scipy.sparse.csgraph import connected_components

    T, S = mask.shape
    labels = np.zeros(T * S, np.int32)
    flat_mask = mask.ravel()
    sign = np.sign(t_obs).ravel()
    nodes = np.flatnonzero(flat_mask)
    if nodes.size == 0:
        return labels.reshape(T, S)
    g = _st_graph(adjacency, T)[nodes][:, nodes].tocoo()
    keep = sign[nodes][g.row] == sign[nodes][g.col]
    from scipy import sparse

    sub = sparse.coo_array(
        (np.ones(int(keep.sum())), (g.row[keep], g.col[keep])), shape=(nodes.size, nodes.size)
    )
    _, comp = connected_components(sub, directed=False)
    # number by first point (time-major), as the cluster test orders within a sign
    first = {}
    for c in comp:
        first.setdefault(int(c), len(first) + 1)
    labels[nodes] = [first[int(c)] for c in comp]
    return labels.reshape(T, S)


def summarise_clusters(labels, t_obs, times, pos, effect=None) -> dict[str, np.ndarray]:
    """Per cluster: time extent, peak (time, source, t, position), size and mass.

    Parameters
    ----------
    labels : ndarray of int, shape (n_times, n_sources)
        Cluster numbers from 1 (0 outside).
    t_obs : ndarray, shape (n_times, n_sources)
    times : ndarray, shape (n_times,)
    pos : ndarray, shape (n_sources, 3)
    effect : ndarray, shape (n_times, n_sources) | None
        The tested effect (mean over subjects): its largest ``|effect|`` in each
        cluster gives ``effect_peak_*``. The t peak is a poor localiser of
        standardised estimates (sLORETA, dSPM, eLORETA): far from the source their
        differences are small but consistent over subjects, so t can be largest
        there; the effect's peak is where the estimate itself is largest.

    Returns
    -------
    dict of name -> ndarray, shape (n_clusters,)
    """
    n = int(labels.max()) if labels.size else 0
    out = {
        k: np.zeros(n)
        for k in ("tstart", "tstop", "peak_time", "peak_t", "mass", "peak_x", "peak_y", "peak_z")
    }
    out["peak_source"] = np.zeros(n, np.int64)
    if effect is not None:
        for k in ("effect_peak_time", "effect_peak", "effect_peak_x", "effect_peak_y"):
            out[k] = np.zeros(n)
        out["effect_peak_z"] = np.zeros(n)
        out["effect_peak_source"] = np.zeros(n, np.int64)
    out["n_sources"] = np.zeros(n, np.int64)
    out["n_points"] = np.zeros(n, np.int64)
    for k in range(1, n + 1):
        ti, si = np.nonzero(labels == k)
        vals = t_obs[ti, si]
        j = int(np.argmax(np.abs(vals)))
        out["tstart"][k - 1] = times[ti.min()]
        out["tstop"][k - 1] = times[ti.max()]
        out["peak_time"][k - 1] = times[ti[j]]
        out["peak_source"][k - 1] = si[j]
        out["peak_t"][k - 1] = vals[j]
        out["mass"][k - 1] = vals.sum()
        out["n_sources"][k - 1] = np.unique(si).size
        out["n_points"][k - 1] = ti.size
        for c, ax in enumerate("xyz"):
            out[f"peak_{ax}"][k - 1] = pos[si[j], c]
        if effect is not None:
            e = effect[ti, si]
            j = int(np.argmax(np.abs(e)))
            out["effect_peak_time"][k - 1] = times[ti[j]]
            out["effect_peak_source"][k - 1] = si[j]
            out["effect_peak"][k - 1] = e[j]
            for c, ax in enumerate("xyz"):
                out[f"effect_peak_{ax}"][k - 1] = pos[si[j], c]
    return out


def run_test(X, adjacency, test: dict, times):
    """Run the configured test on ``X``; an xarray Dataset with the per-cluster table.

    Parameters
    ----------
    X : ndarray, shape (n_subjects, n_times, n_sources)
    adjacency : sparse matrix, shape (n_sources, n_sources)
    test : dict
        A ``statistics`` entry of the config (defaults filled in).
    times : ndarray, shape (n_times,)

    Returns
    -------
    xarray.Dataset
        ``t_obs``, ``cluster_label`` (time, source); ``cluster_p_value`` and the
        cluster table (cluster); the test's own maps (``p_value``, ``tfce``) and
        null distribution ``h0`` (permutation).
    """
    from .. import stats

    tail, kind = int(test["tail"]), test["test"]
    alpha = float(test.get("alpha", 0.05))
    if kind == "cluster":
        thr = test["threshold"]
        if thr is not None and tail == -1:
            thr = -abs(thr)
        res = stats.cluster_permutation_test(
            X,
            adjacency,
            thr,
            tail=tail,
            n_permutations=int(test["n_permutations"]),
            seed=int(test["seed"]),
        )
        ds = res.to_xarray(times)
        ds.attrs["threshold"] = float(res.threshold)
        return ds
    if kind == "tfce":
        sgn = -1.0 if tail == -1 else 1.0
        start, step = test["tfce_start"], test["tfce_step"]
        res = stats.tfce_permutation_test(
            X,
            adjacency,
            start=None if start is None else sgn * start,
            step=None if step is None else sgn * step,
            tail=tail,
            n_permutations=int(test["n_permutations"]),
            seed=int(test["seed"]),
        )
        ds = res.to_xarray(times)
        p = res.p_values
    elif kind == "tmax":
        res = stats.tmax_permutation_test(
            X, tail=tail, n_permutations=int(test["n_permutations"]), seed=int(test["seed"])
        )
        ds = res.to_xarray(times)
        p = res.p_values
    elif kind == "fdr":
        ds = _fdr_test(X, tail, alpha, times)
        p = ds["p_value"].values
    else:
        raise ValueError(f"unknown test {kind!r} (cluster | tfce | tmax | fdr)")
    return _significant_clusters(ds, p, adjacency, alpha)


def _fdr_test(X, tail, alpha, times):
    """Point-wise t-tests, p-values adjusted by Benjamini-Hochberg."""
    import xarray as xr
    from scipy.stats import t as t_dist

    from .. import stats

    n = X.shape[0]
    t_obs = stats.ttest_1samp(X)
    if tail == 0:
        p_unc = 2 * t_dist.sf(np.abs(t_obs), n - 1)
    else:
        p_unc = t_dist.sf(tail * t_obs, n - 1)
    _, p = stats.fdr_correction(p_unc, alpha)
    ts = ("time", "source")
    return xr.Dataset(
        {
            "t_obs": (ts, t_obs, {"units": "1", "long_name": "one-sample t across subjects"}),
            "p_value": (ts, p, {"units": "1", "long_name": "FDR-adjusted p-value (BH)"}),
            "p_uncorrected": (ts, p_unc, {"units": "1", "long_name": "t-test p-value"}),
        },
        coords={"time": ("time", np.asarray(times), {"units": "s"})},
        attrs={"test": "point-wise t-test, Benjamini-Hochberg FDR", "tail": tail},
    )


def _significant_clusters(ds, p, adjacency, alpha):
    """Clusters of significant points (connected, same sign), with their smallest p-value."""
    t_obs = ds["t_obs"].values
    labels = label_clusters(p < alpha, t_obs, adjacency)
    n_cl = int(labels.max())
    pmin = np.array([p[labels == k].min() for k in range(1, n_cl + 1)])
    ds["cluster_label"] = (
        ("time", "source"),
        labels,
        {"units": "1", "long_name": f"connected significant points (p < {alpha:g}), 0 = none"},
    )
    ds = ds.assign_coords(cluster=("cluster", np.arange(1, n_cl + 1)))
    ds["cluster_p_value"] = ("cluster", pmin, {"units": "1", "long_name": "smallest p-value"})
    return ds


def _adjacency(src_paths, subjects, usable):
    """Adjacency from the first usable subject's source space (triangles, else grid)."""
    from ..stats import source_adjacency

    errors = []
    for sub, path in zip(subjects, src_paths, strict=True):
        if sub not in usable:
            continue
        try:
            src = load_source_space(path)
        except Exception as exc:  # noqa: BLE001 - next subject
            errors.append(f"sub-{sub}: {exc}")
            continue
        return source_adjacency(src), sub
    raise ValueError(f"no usable subject's source space for the adjacency: {errors}")


def _add_summaries(ds, X, pos, times, alpha, units):
    """Cluster table, significance mask, mean tested map and the null distribution's summary."""
    effect = X.mean(axis=0)
    summary = summarise_clusters(
        ds["cluster_label"].values, ds["t_obs"].values, times, pos, effect
    )
    unit_of = {"tstart": "s", "tstop": "s", "peak_time": "s", "effect_peak_time": "s"}
    unit_of.update(peak_x="m", peak_y="m", peak_z="m", effect_peak=units)
    unit_of.update(effect_peak_x="m", effect_peak_y="m", effect_peak_z="m")
    for k, v in summary.items():
        ds[f"cluster_{k}"] = ("cluster", v, {"units": unit_of.get(k, "1")})
    ds["mean_difference"] = (
        ("time", "source"),
        effect,
        {"units": units, "long_name": "mean over subjects of the tested maps"},
    )
    sig = np.flatnonzero(ds["cluster_p_value"].values < alpha) + 1
    ds["significant"] = (
        ("time", "source"),
        np.isin(ds["cluster_label"].values, sig).astype(np.int8),
        {"units": "1", "long_name": f"in a cluster with p < {alpha:g}"},
    )
    h0 = np.abs(np.asarray(ds["h0"].values)) if "h0" in ds else np.zeros(0)
    h0_summary = {}
    if h0.size:
        h0_summary = {
            "h0_abs_max": float(h0.max()),
            "h0_abs_median": float(np.median(h0)),
            "h0_abs_q95": float(np.quantile(h0, 0.95)),
        }
    return ds, int(sig.size), h0_summary


def _load_cohort(ctx, test, subjects):
    """Usable subjects' datasets per condition, the others with their reason."""
    n_cond = len(test["conditions"])
    stc_paths = flatten(ctx.input.stc)
    per_cond = [stc_paths[k * len(subjects) : (k + 1) * len(subjects)] for k in range(n_cond)]
    per_sub, failed = read_cohort_estimates(
        {sub: [paths[i] for paths in per_cond] for i, sub in enumerate(subjects)}
    )
    used = list(per_sub)
    if len(used) < MIN_SUBJECTS:
        raise ValueError(
            f"statistics {test['name']!r}: {len(used)} usable subject(s), a cohort test needs "
            f"at least {MIN_SUBJECTS} (left out: "
            + ("; ".join(f"sub-{k}: {v}" for k, v in failed.items()) or "none")
            + ")"
        )
    return per_sub, used, failed


def step_statistics(ctx: StepContext) -> None:
    """One configured cohort test (``group/task-<t>_stat-<name>_stats.nc``).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    p = ctx.params
    test = dict(p.test)
    subjects = list(p.subjects)
    per_sub, used, failed = _load_cohort(ctx, test, subjects)
    ref = per_sub[used[0]][0]
    units = str(ref["stc"].attrs.get("units", ""))
    times = np.asarray(ref["time"].values, float)
    epoch_end = float(p.epoch_window[1])
    window = (float(test["tmin"]), epoch_end if test["tmax"] is None else float(test["tmax"]))
    stcs = [[_magnitude(ds["stc"]) for ds in per_sub[s]] for s in used]
    X = statistic_data(stcs, test["kind"], times, window, p.baseline)
    win = _window(times, *window, "the window tmin/tmax")
    adjacency, adj_sub = _adjacency(flatten(ctx.input.src), subjects, per_sub)
    if adjacency.shape[0] != X.shape[2]:
        raise ValueError(
            f"sub-{adj_sub}'s source space has {adjacency.shape[0]} sources, the estimates "
            f"{X.shape[2]}"
        )
    pos = mean_source_positions([per_sub[s][0] for s in used])
    ds = run_test(X, adjacency, test, times[win])
    ds = ds.assign_coords(
        source=("source", np.arange(X.shape[2])),
        **{
            c: ("source", pos[:, i], {"units": "m", "long_name": f"{c} (mean over subjects)"})
            for i, c in enumerate("xyz")
        },
    )
    alpha = float(test.get("alpha", 0.05))
    ds, n_sig, h0_summary = _add_summaries(ds, X, pos, times[win], alpha, units)
    attrs = {k: v for k, v in ds.attrs.items() if k != "test"}
    attrs.update(
        name=test["name"],
        kind=test["kind"],
        stat_test=test["test"],
        stat_description=ds.attrs.get("test", test["test"]),
        conditions=list(test["conditions"]),
        condition_names=list(p.condition_names),
        method=test["method"],
        window=list(window),
        baseline=list(p.baseline) if test["kind"] == "baseline" else None,
        tail=int(test["tail"]),
        seed=int(test["seed"]),
        n_permutations_requested=int(test["n_permutations"]),
        alpha=alpha,
        subjects=used,
        n_subjects=len(used),
        failed_subjects=failed,
        adjacency_from=f"sub-{adj_sub}",
        n_significant_clusters=n_sig,
        units=units,
        **h0_summary,
    )
    attrs.setdefault("threshold", test["threshold"])
    attrs.setdefault("n_permutations", 0)
    attrs.setdefault("exhaustive", 0)
    ds.attrs = {}
    ctx.write(ds, ctx.output[0], **attrs)
