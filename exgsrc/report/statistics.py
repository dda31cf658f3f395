"""Cohort report: one block per cohort statistical test (``group/*_stats.nc``).

Each block gives the design (test, conditions, method, window, subjects used and
left out, permutations), a table of the clusters (sign, p-value, time extent,
peak time and t, largest effect and its position, size) and, for every
significant cluster, its mean effect on the source map at the time of its largest
effect (cluster sources only) with that source's time course.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import _figures as F
from ._data import failure_block, load
from ._html import Markup, esc, fig_to_img, notice, table

__all__ = ["MAX_MAPS", "MAX_OTHER_ROWS", "statistics_files_beside", "statistics_sections"]

#: Significant clusters drawn per test (the table lists them all).
MAX_MAPS = 6
#: Non-significant clusters listed per test (smallest p first); the file has them all.
MAX_OTHER_ROWS = 10


def statistics_files_beside(out) -> list[Path]:
    """The ``*_stats.nc`` files in the folder of the report ``out`` (``group/``).

    Parameters
    ----------
    out : path-like | None

    Returns
    -------
    list of Path
    """
    if out is None:
        return []
    return sorted(Path(out).parent.glob("*_stat-*_stats.nc"))


def _fmt_ms(t) -> str:
    return f"{float(t) * 1e3:.0f}"


def _design(ds) -> str:
    a = ds.attrs
    conds = a.get("condition_names") or a.get("conditions") or []
    if a.get("kind") == "paired" and len(conds) == 2:
        contrast = f"{conds[0]} minus {conds[1]}"
    else:
        base = a.get("baseline")
        contrast = f"{conds[0] if conds else '?'} minus its baseline" + (
            f" [{_fmt_ms(base[0])}, {_fmt_ms(base[1])}] ms" if base else ""
        )
    win = a.get("window") or [np.nan, np.nan]
    perm = a.get("n_permutations", 0)
    exact = " (all sign flips: exact)" if a.get("exhaustive") else ""
    thr = a.get("threshold")
    rows = [
        ["contrast", contrast],
        ["inverse method", a.get("method", "")],
        ["test", f"{a.get('stat_test', '')}: {a.get('stat_description', '')}"],
        ["window", f"{_fmt_ms(win[0])} to {_fmt_ms(win[1])} ms"],
        ["tail", {0: "two-tailed", 1: "upper", -1: "lower"}.get(a.get("tail"), a.get("tail"))],
        ["subjects", f"{a.get('n_subjects', '?')}: " + ", ".join(a.get("subjects") or [])],
        ["permutations", f"{perm}{exact}, seed {a.get('seed', '')}"],
    ]
    if thr is not None:
        rows.append(["cluster-forming threshold", f"|t| > {abs(float(thr)):.3g}"])
    if a.get("h0_abs_q95") is not None:
        rows.append(["null maximum, 95th percentile", f"{float(a['h0_abs_q95']):.4g}"])
    return table(["", ""], rows)


def _cluster_table(ds, alpha) -> tuple[Markup, list[int]]:
    """Table of every cluster; the numbers of the significant ones."""
    if "cluster" not in ds.dims or ds.sizes["cluster"] == 0:
        return Markup("<p>No cluster: no point crossed the threshold.</p>"), []
    p = np.asarray(ds["cluster_p_value"].values, float)
    order = np.argsort(p, kind="stable")
    rows, sig, n_other = [], [], 0
    for i in order:
        k = int(ds["cluster"].values[i])
        ok = p[i] < alpha
        if ok:
            sig.append(k)
        else:
            n_other += 1
            if n_other > MAX_OTHER_ROWS:
                continue
        peak_t = float(ds["cluster_peak_t"].values[i])
        pre = "cluster_effect_peak" if "cluster_effect_peak_x" in ds else "cluster_peak"
        pos = [float(ds[f"{pre}_{c}"].values[i]) * 1e3 for c in "xyz"]
        t_eff = ds[f"{pre}_time"].values[i] if pre != "cluster_peak" else np.nan
        cls = "" if ok else "muted"
        rows.append(
            [
                k,
                "+" if peak_t > 0 else "-",
                (Markup(f"<strong>{p[i]:.4g}</strong>") if ok else f"{p[i]:.4g}", p[i], cls),
                f"{_fmt_ms(ds['cluster_tstart'].values[i])}-{_fmt_ms(ds['cluster_tstop'].values[i])}",
                _fmt_ms(ds["cluster_peak_time"].values[i]),
                round(peak_t, 2),
                _fmt_ms(t_eff) if np.isfinite(t_eff) else None,
                ", ".join(f"{v:.1f}" for v in pos),
                int(ds["cluster_n_sources"].values[i]),
                round(float(ds["cluster_mass"].values[i]), 1),
            ]
        )
    headers = [
        "cluster",
        "sign",
        "p",
        "time (ms)",
        "peak |t| (ms)",
        "peak t",
        "largest effect (ms)",
        "largest effect x, y, z (mm)",
        "sources",
        "sum of t",
    ]
    tbl = table(headers, rows, sortable=True)
    if n_other > MAX_OTHER_ROWS:
        tbl = Markup(
            f"{tbl}<p>{n_other - MAX_OTHER_ROWS} more clusters with p &ge; {alpha:g} are "
            "in the file (<code>cluster_*</code> variables).</p>"
        )
    return tbl, sig


def _cluster_map(ds, k: int) -> Markup:
    """Cluster ``k`` on the source map at its peak time (the largest effect in the
    cluster, else the largest |t|; other sources 0), and that source's time course."""
    i = int(np.flatnonzero(ds["cluster"].values == k)[0])
    labels = np.asarray(ds["cluster_label"].values)
    eff = "cluster_effect_peak_time" in ds and "mean_difference" in ds
    pre, var = ("cluster_effect_peak", "mean_difference") if eff else ("cluster_peak", "t_obs")
    data = np.asarray(ds[var].values, float)
    unit = str(ds.attrs.get("units", "")) if eff else "t"
    times = np.asarray(ds["time"].values, float)
    i_t = int(np.argmin(np.abs(times - float(ds[f"{pre}_time"].values[i]))))
    s = int(ds[f"{pre}_source"].values[i])
    pos = np.stack([ds[c].values for c in "xyz"], axis=1)
    values = np.where(labels[i_t] == k, data[i_t], 0.0)
    p = float(ds["cluster_p_value"].values[i])
    title = (
        f"cluster {k}: p = {p:.3g}, {_fmt_ms(ds['cluster_tstart'].values[i])}-"
        f"{_fmt_ms(ds['cluster_tstop'].values[i])} ms; "
        f"{'mean effect' if eff else 't'} at {_fmt_ms(times[i_t])} ms"
    )
    fig = _cluster_figure(times, data[:, s], pos, values, title=title, unit=unit, mark=pos[s])
    return fig_to_img(fig, alt=f"statistics cluster {k}")


def _cluster_figure(times, course, src_pos, values, *, title, unit, mark):
    """The cluster's time course at its peak source and its extent seen from above."""
    from matplotlib.figure import Figure

    t = np.asarray(times) * 1e3
    p = np.asarray(src_pos) * 1e3
    fig = Figure(figsize=(11, 3.6), dpi=100, layout="constrained")
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1.4, 1])
    ax0.plot(t, course)
    ax0.set_xlabel("time (ms)")
    ax0.set_ylabel(unit)
    v = np.asarray(values, float)
    order = np.argsort(v)
    sc = ax1.scatter(p[order, 0], p[order, 1], c=v[order], s=10, cmap="viridis")
    ax1.plot(mark[0] * 1e3, mark[1] * 1e3, "*", ms=14, mfc="none", mec="r", mew=1.5)
    F._spatial_axes(ax1, 0, 1)
    fig.colorbar(sc, ax=ax1, shrink=0.8).set_label(unit)
    fig.suptitle(title, fontsize=11)
    return fig


def _block(path) -> str:
    name = Path(path).name
    try:
        ds = load(path, f"statistics {name}")
        a = ds.attrs
        alpha = float(a.get("alpha", 0.05))
        title = f"{a.get('name', name)}: {a.get('stat_test', '')} test, {a.get('method', '')}"
        parts = [f"<h3>{esc(title)}</h3>", _design(ds)]
        failed = a.get("failed_subjects")
        if isinstance(failed, dict) and failed:
            parts.append(
                notice(
                    "warning",
                    "subjects left out of this test",
                    "; ".join(f"sub-{k}: {v}" for k, v in failed.items()),
                )
            )
        tbl, sig = _cluster_table(ds, alpha)
        parts.append(
            f"<p>{len(sig)} significant cluster(s) (p &lt; {alpha:g}, family-wise); "
            "clusters sorted by p-value.</p>"
        )
        parts.append(tbl)
        for k in sig[:MAX_MAPS]:
            parts.append(_cluster_map(ds, k))
        if len(sig) > MAX_MAPS:
            parts.append(f"<p>Maps of the first {MAX_MAPS} significant clusters shown.</p>")
        return "".join(str(p) for p in parts)
    except Exception as err:  # noqa: BLE001 - shown in the report
        test = re.search(r"_stat-([A-Za-z0-9]+)_stats\.nc$", name)
        heading = f"{test.group(1)} ({name})" if test else name
        return f"<h3>{esc(heading)}</h3>" + failure_block(err, f"statistics {name}")[1]


def statistics_sections(files: Iterable[os.PathLike | str] | os.PathLike | str | None) -> Markup:
    """The report section of the cohort tests ("" when there are none).

    Parameters
    ----------
    files : iterable of path-like | path-like | None
        The tests' ``*_stats.nc`` files; a single path is the cohort report's own
        path, whose folder is searched (:func:`statistics_files_beside`).

    Returns
    -------
    Markup
    """
    if files is None:
        return Markup("")
    if isinstance(files, str | os.PathLike):
        files = statistics_files_beside(files)
    files = list(files)
    if not files:
        return Markup("")
    body = [
        '<section id="statistics"><h2>Cohort statistics</h2>'
        "<p>Sign-flip permutation tests across subjects (config <code>statistics</code>). "
        "Maps: each significant cluster's mean tested effect (A minus B, or minus the "
        "baseline) at the time of its largest effect, cluster sources only, top view, the "
        "star at that source; left: that source's time course. The largest |t| of a "
        "cluster can lie far from the source with standardised estimates (small but "
        "consistent differences); the largest effect localises it.</p>"
    ]
    body += [_block(f) for f in files]
    body.append("</section>")
    return Markup("".join(body))
