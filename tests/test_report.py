"""Tests of exgsrc.report: per-subject and cohort HTML reports.

Inputs are small synthetic xarray Datasets following ARCHITECTURE.md's
conventions (dims channel/source/orientation/time, x/y/z coords), written to
netCDF where the file path matters. The browser test drives Debian's chromium
through Playwright.
"""

from __future__ import annotations

import html
import importlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from exgsrc.report import (
    _html,
    cohort_report,
    robust_z,
    subject_report,
    subject_summary,
    whitened_gfp,
)
from exgsrc.report._data import classify_paths
from exgsrc.report._options import Options
from exgsrc.report.cohort import t_quantile
from exgsrc.report.subject import gfp_peaks
from exgsrc.steps.report import build_cohort, console_line
from exgsrc.store import FILE_SUFFIXES

XSS = "<script>alert(1)</script>"
#: report options of the tests that do not look at the maps: fewer panels, faster
FAST = {"slider_frames": 4, "n_peaks": 1, "views": ["top", "left"]}
CHROMIUM = "/usr/bin/chromium"
CENTER = np.array([0.0, 0.0, 0.04])
RADIUS = 0.09


def _sphere_points(n, radius, rng, zmin=0.0):
    """Roughly uniform points on the upper part of a sphere (Fibonacci spiral)."""
    k = np.arange(n) + 0.5
    z = 1 - k / n * (1 - zmin)
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    pts = np.column_stack([r * np.cos(phi), r * np.sin(phi), z]) * radius
    return pts + CENTER + rng.normal(0, 1e-4, (n, 3))


def _gain(ch_pos, src_pos):
    """Infinite-medium dipole potentials, (n_ch, n_src, 3) in V/(A m)."""
    d = ch_pos[:, None, :] - src_pos[None, :, :]
    r3 = np.linalg.norm(d, axis=2, keepdims=True) ** 3
    return d / r3 / (4 * np.pi * 0.33)


def _synthetic(
    ch_names=None,
    conditions=("faces", "cars"),
    methods=("dSPM", "sLORETA"),
    seed=0,
    snr_scale=1.0,
    n_src=150,
    excluded=None,
    ico=False,
    tmin=-0.1,
    tmax=0.3,
):
    """Inputs of a subject report; ``ico``: the demo's 642-source shell with its triangles
    (and a ``src`` input), else scattered sources (drawn as a glass brain)."""
    rng = np.random.default_rng(seed)
    n_ch = 32
    names = list(ch_names) if ch_names is not None else [f"E{i:02d}" for i in range(n_ch)]
    n_ch = len(names)
    ch_pos = _sphere_points(n_ch, RADIUS, rng, zmin=-0.2)
    src_ds = None
    if ico:
        from exgsrc.source_space import ico_source_space

        src_ds = ico_source_space(3, 0.7 * RADIUS, CENTER).to_xarray()
        src_pos = np.column_stack([src_ds[c].values for c in ("x", "y", "z")])
    else:
        src_pos = CENTER + rng.uniform(-1, 1, (n_src * 3, 3)) * 0.06
        src_pos = src_pos[np.linalg.norm(src_pos - CENTER, axis=1) < 0.065][:n_src]
    n_src = len(src_pos)
    g3 = _gain(ch_pos, src_pos)
    src_coords = {
        "source": np.arange(n_src),
        "x": ("source", src_pos[:, 0]),
        "y": ("source", src_pos[:, 1]),
        "z": ("source", src_pos[:, 2]),
    }
    sphere = {
        "sphere_radii": [0.9 * RADIUS, 0.92 * RADIUS, 0.97 * RADIUS, RADIUS],
        "sphere_center": CENTER.tolist(),
    }
    # the montage lists every recorded channel; excluded ones are not used (no position)
    if excluded is None:
        excluded = {"BAD1": "bad in channels.tsv", "VEOG": "non-EEG (EOG)"}
    all_names = names + list(excluded)
    all_pos = np.vstack([ch_pos, np.full((len(excluded), 3), np.nan)])
    montage = xr.Dataset(
        {"pos": (("channel", "xyz"), all_pos, {"units": "m", "long_name": "electrode position"})},
        coords={
            "channel": all_names,
            "xyz": ["x", "y", "z"],
            "x": ("channel", all_pos[:, 0]),
            "y": ("channel", all_pos[:, 1]),
            "z": ("channel", all_pos[:, 2]),
            "used": ("channel", np.array([1] * n_ch + [0] * len(excluded), np.int8)),
            "excluded_reason": ("channel", [""] * n_ch + list(excluded.values())),
        },
        attrs={
            "sfreq": 250.0,
            "warnings": [],
            "exgsrc_version": "0.1.0",
            "config_sha256": "ab" * 32,
            "created": "2026-01-01T00:00:00+00:00",
        },
    )
    fwd = xr.Dataset(
        {
            "gain": (("channel", "source", "orientation"), g3, {"units": "V/(A m)"}),
            "ch_pos": (("channel", "xyz"), ch_pos, {"units": "m"}),
        },
        coords={
            "channel": names,
            "ch_x": ("channel", ch_pos[:, 0]),
            "ch_y": ("channel", ch_pos[:, 1]),
            "ch_z": ("channel", ch_pos[:, 2]),
            "source": np.arange(n_src),
            "x": ("source", src_pos[:, 0]),
            "y": ("source", src_pos[:, 1]),
            "z": ("source", src_pos[:, 2]),
            "orientation": ["x", "y", "z"],
            "xyz": ["x", "y", "z"],
        },
        attrs={"orientation": "free", **sphere},
    )
    # noise: spatially correlated, average-referenced
    a = rng.normal(0, 1, (n_ch, n_ch)) * 0.3 + np.eye(n_ch)
    noise_cov = a @ a.T * (5e-6) ** 2 / n_ch
    proj = np.eye(n_ch) - 1.0 / n_ch
    noise_cov = proj @ noise_cov @ proj
    cov = xr.Dataset(
        {"cov": (("channel", "channel2"), noise_cov, {"units": "V^2"})},
        coords={"channel": names, "channel2": names},
        attrs={"nfree": 2000, "method": "empirical", "rank": n_ch - 1},
    )
    times = np.arange(tmin, tmax + 1e-9, 0.004)
    chol = np.linalg.cholesky(noise_cov + np.eye(n_ch) * 1e-20)
    evokeds, stcs, truth, counts, drops, snrs = {}, {}, {}, {}, [], []
    gf = g3.reshape(n_ch, -1)
    gf = proj @ gf
    kernel = gf.T @ np.linalg.inv(gf @ gf.T + 1e-3 * np.trace(gf @ gf.T) / n_ch * np.eye(n_ch))
    for k, cond in enumerate(conditions):
        src = int(rng.integers(n_src))
        truth[cond] = src_pos[src][None]
        wave = np.exp(-0.5 * ((times - 0.1 - 0.03 * k) / 0.02) ** 2)
        nave = 40 - 5 * k
        signal = proj @ g3[:, src, 2][:, None] * wave * 2e-8 * snr_scale
        noise = chol @ rng.normal(0, 1, (n_ch, len(times))) / np.sqrt(nave)
        data = signal + noise
        evokeds[cond] = xr.Dataset(
            {"evoked": (("channel", "time"), data, {"units": "V", "long_name": "evoked"})},
            coords={"channel": names, "time": times},
            attrs={"condition": cond, "nave": nave},
        )
        counts[cond] = {"total": 50, "kept": nave, "dropped": 50 - nave}
        drops += [{"label": cond, "reason": "amplitude > 100 µV"}] * (50 - nave)
        snrs.append(3 * wave + 0.1)
        est = (kernel @ data).reshape(n_src, 3, len(times))
        for m in methods:
            stcs[(cond, m)] = xr.Dataset(
                {"stc": (("source", "orientation", "time"), est * 1e9, {"units": "1"})},
                coords={**src_coords, "orientation": ["x", "y", "z"], "time": times},
                attrs={"method": m, "condition": cond, "lambda2": 1 / 9, "nave": nave},
            )
    meths = list(methods)
    res_vars = {}
    for name, scale in [
        ("psf_peak_err", 0.01),
        ("psf_sd_ext", 0.02),
        ("psf_peak_amp", 1.0),
        ("ctf_peak_err", 0.012),
        ("ctf_sd_ext", 0.025),
        ("ctf_peak_amp", 1.0),
    ]:
        res_vars[name] = (
            ("inverse_method", "source"),
            rng.gamma(2.0, scale / 2, (len(meths), n_src)),
            {"units": "m" if "amp" not in name else "1"},
        )
    resolution = xr.Dataset(res_vars, coords={**src_coords, "inverse_method": meths})
    epochs = xr.Dataset(
        attrs={
            "epoch_counts": counts,
            "drop_details": drops,
            "sfreq": 250.0,
            "filter": {"l_freq": 0.1, "h_freq": 40.0, "resample": None},
            "baseline": [tmin, 0.0],
            "tmin": tmin,
            "tmax": tmax,
            "warnings": [],
        }
    )
    snr = xr.Dataset(
        {
            "snr": (("condition", "time"), np.array(snrs)),
            "snr_est": (("condition", "time"), np.array(snrs)),
        },
        coords={"condition": list(conditions), "time": times},
    )
    out = dict(
        montage=montage,
        fwd=fwd,
        epochs=epochs,
        cov=cov,
        snr=snr,
        resolution=resolution,
        evokeds=evokeds,
        stcs=stcs,
        truth=truth,
    )
    if src_ds is not None:
        out["src"] = src_ds
    return out


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


def _sections(doc):
    return dict(re.findall(r'<section id="([a-z]+)"><h2>.*?<span class="badge st-(\w+)">', doc))


def test_subject_report_has_every_section_and_no_external_resources(synthetic, tmp_path):
    out = tmp_path / "sub-01" / "sub-01_task-x_report.html"
    doc, summary = subject_report(
        "01", task="x", out=out, return_summary=True, options=FAST, **synthetic
    )
    assert out.read_text(encoding="utf-8") == doc
    secs = _sections(doc)
    assert list(secs) == [
        "data",
        "head",
        "forward",
        "cov",
        "evokeds",
        "stcs",
        "resolution",
        "provenance",
    ]
    assert set(secs.values()) <= {"ok", "warning"}, secs
    # all figures embedded as PNG data URIs; nothing fetched from anywhere
    # head 1, forward 1, covariance 2, evoked 1 per condition, 1 per stc, resolution:
    # distributions and 4 maps (PSF/CTF peak error and spread)
    assert doc.count('src="data:image/png;base64,') == 1 + 1 + 2 + 2 + 4 + 5
    # one time slider per condition, its frames JPEG
    assert doc.count('<div class="slider">') == 2
    assert doc.count('src="data:image/jpeg;base64,') == 2 * 4
    assert not re.search(r'(src|href)="(https?:)?//', doc)
    assert "Content-Security-Policy" in doc
    # data section: exclusions with reasons, epochs and their drop reasons
    assert "bad in channels.tsv" in doc and "non-EEG (EOG)" in doc
    assert "amplitude &gt; 100 µV: 10" in doc  # 50 epochs, nave 40 -> 10 dropped
    assert summary["n_channels"] == 32 and summary["n_excluded"] == 2
    assert summary["epochs"] == {"faces": 40, "cars": 35}
    assert summary["cov_rank"] == 31
    # true dipoles are known: the peak-to-truth errors are reported per condition/method
    assert set(summary["loc_error_true_mm"]) == {
        "faces/dSPM",
        "faces/sLORETA",
        "cars/dSPM",
        "cars/sLORETA",
    }
    assert set(summary["psf_peak_err_median_mm"]) == {"dSPM", "sLORETA"}
    # noise-only synthetic baseline whitened with its own covariance: GFP ~ 1
    assert 0.5 < summary["white_gfp_baseline"] < 2.0


def test_whitened_gfp_of_pure_noise_is_one():
    rng = np.random.default_rng(3)
    n_ch, n_t, nave = 20, 4000, 25
    a = rng.normal(size=(n_ch, n_ch))
    cov = a @ a.T * 1e-12
    noise = np.linalg.cholesky(cov) @ rng.normal(size=(n_ch, n_t)) / np.sqrt(nave)
    gfp, rank = whitened_gfp(noise, nave, cov)
    # chi-square per degree of freedom of whitened Gaussian noise has mean 1
    assert rank == n_ch - 1  # average reference removes one dimension
    assert abs(gfp.mean() - 1.0) < 0.03
    # a covariance twice too small doubles it
    gfp2, _ = whitened_gfp(noise, nave, cov / 2)
    assert abs(gfp2.mean() - 2.0) < 0.06


@pytest.mark.parity
def test_whitened_gfp_matches_mne_whiten_evoked():
    """Our whitened GFP equals MNE's plot_white quantity: sum(whiten_evoked(...)**2) / rank."""
    mne = importlib.import_module("mne")
    rng = np.random.default_rng(0)
    n, n_t, nave = 24, 200, 17
    names = [f"E{i}" for i in range(n)]
    a = rng.normal(size=(n, n))
    cov = a @ a.T * 1e-12
    proj = np.eye(n) - 1.0 / n
    data = proj @ (np.linalg.cholesky(cov) @ rng.normal(size=(n, n_t)))
    info = mne.create_info(names, 250.0, "eeg")
    k = np.arange(n)
    pos = np.c_[np.cos(k), np.sin(k), np.ones(n)] * 0.09
    info.set_montage(
        mne.channels.make_dig_montage(dict(zip(names, pos, strict=True)), coord_frame="head")
    )
    evoked = mne.EvokedArray(data, info, tmin=-0.1, nave=nave, verbose="error")
    evoked.set_eeg_reference(projection=True, verbose="error")
    mne_cov = mne.Covariance(cov, names, [], [], nfree=100, verbose="error")
    white = mne.whiten_evoked(evoked, mne_cov, rank={"eeg": n - 1}, verbose="error")
    expected = (white.data**2).sum(axis=0) / (n - 1)
    gfp, rank = whitened_gfp(data, nave, cov, n - 1)
    assert rank == n - 1
    np.testing.assert_allclose(gfp, expected, rtol=1e-6)


def test_missing_and_failed_steps_render_as_blocks(synthetic, tmp_path):
    failed = xr.Dataset(
        attrs={"exgsrc_status": "failed", "exgsrc_error": "LinAlgError: singular matrix"}
    )
    inputs = dict(synthetic)
    inputs["fwd"] = None
    inputs["cov"] = tmp_path / "nope_cov.nc"
    inputs["resolution"] = failed
    stcs = dict(inputs["stcs"])
    stcs[("faces", "eLORETA")] = tmp_path / "absent_stc.nc"
    inputs["stcs"] = stcs
    doc, summary = subject_report(
        "02",
        return_summary=True,
        failures={"inverse": "did not converge"},
        options=dict(FAST, slider_frames=0),
        **inputs,
    )
    secs = _sections(doc)
    assert secs["forward"] == "missing"
    assert secs["cov"] == "missing"
    assert secs["resolution"] == "failed"
    assert secs["stcs"] == "missing"
    assert secs["data"] in ("ok", "warning")
    assert "singular matrix" in doc
    assert "absent_stc.nc does not exist" in doc
    assert summary["status"] == "failed"
    assert summary["section_status"]["resolution"] == "failed"
    status_line = re.search(r'<div class="statusline.*?</div>', doc, re.S).group(0)
    assert "st-failed" in status_line and "did not converge" in status_line
    # a report with nothing at all still renders, with every section missing
    doc = subject_report("03")
    assert set(_sections(doc).values()) <= {"missing", "ok"}
    assert _sections(doc)["forward"] == "missing"


def test_malformed_input_renders_failed_with_reason(synthetic):
    inputs = dict(synthetic)
    inputs["cov"] = xr.Dataset({"cov": (("channel", "channel2"), np.ones((3, 4)))})
    summary = subject_summary("04", **inputs)
    assert summary["section_status"]["cov"] == "failed"
    assert summary["status"] == "failed"
    assert any("covariance must be square" in r for r in summary["status_reasons"])


@pytest.fixture(scope="module")
def xss_report(tmp_path_factory):
    """A report whose channel, condition, subject and task names are HTML/JS."""
    names = [XSS] + [f"E{i:02d}" for i in range(31)]
    inputs = _synthetic(
        ch_names=names, conditions=(XSS, 'a"b&c'), methods=("sLORETA",), excluded={XSS + "2": XSS}
    )
    out = tmp_path_factory.mktemp("xss") / "sub-x" / "sub-x_task-t_report.html"
    doc, summary = subject_report(
        XSS,
        task="t<i>",
        out=out,
        return_summary=True,
        options=dict(FAST, slider_frames=3),
        **inputs,
    )
    return out, doc, summary, inputs


def test_strings_from_inputs_are_escaped(xss_report):
    _, doc, summary, _ = xss_report
    assert XSS not in doc
    assert "<i>" not in doc
    assert html.escape(XSS) in doc
    assert 'a"b&c' not in doc and "a&quot;b&amp;c" in doc
    # only our own inline script block exists
    assert doc.count("<script>") == 1
    summary2 = dict(summary, subject="<b>" + XSS)
    cdoc = cohort_report([summary, summary2], links={XSS: f"../sub-{XSS}/r.html"})
    assert XSS not in cdoc and "<b>" not in cdoc
    assert cdoc.count("<script>") == 1
    assert html.escape(f"../sub-{XSS}/r.html") in cdoc
    # links with a URL scheme are not rendered as links
    jdoc = cohort_report([dict(summary, subject="j")], links={"j": "javascript:alert(1)"})
    assert "javascript:" not in jdoc


def test_gfp_peaks_known_bumps():
    t = np.arange(-0.1, 0.5, 0.002)
    g = sum(
        h * np.exp(-0.5 * ((t - c) / 0.01) ** 2)
        for c, h in [(-0.05, 9.0), (0.1, 1.0), (0.2, 3.0), (0.3, 2.0), (0.4, 0.5)]
    )
    # the pre-stimulus bump is ignored; the 3 largest post-stimulus ones, in time order
    assert [round(float(t[i]), 3) for i in gfp_peaks(t, g)] == [0.1, 0.2, 0.3]
    assert [round(float(t[i]), 3) for i in gfp_peaks(t, g, n_peaks=1)] == [0.2]
    # a response window: bumps outside it are ignored, whatever their size
    assert [round(float(t[i]), 3) for i in gfp_peaks(t, g, 3, 0.15, 0.35)] == [0.2, 0.3]
    # noise rising towards the epoch's end is no peak inside the window
    tail = g + np.where(t > 0.45, 50 * (t - 0.45), 0)
    win = Options().window(t)
    assert win == pytest.approx((0.05, t[-1] - 0.05))
    assert [round(float(t[i]), 3) for i in gfp_peaks(t, tail, 2, *win)] == [0.2, 0.3]


def test_robust_z_known_values():
    z = robust_z([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    # median 3, MAD = median(|-2, -1, 0, 1, 97|) = 1
    np.testing.assert_allclose(z[:5], 0.6745 * np.array([-2, -1, 0, 1, 97]))
    assert np.isnan(z[5])
    z0 = robust_z([5.0, 5.0, 5.0, 6.0])
    assert z0[0] == 0 and np.isinf(z0[3])


def _cohort_summaries(n=6):
    out = []
    for i in range(n):
        out.append(
            {
                "subject": f"{i + 1:02d}",
                "status": "ok",
                "n_channels": 30 + (i % 2),
                "n_excluded": 1 + (i % 2),
                "epochs": {"faces": 40 + i, "cars": 38 - i},
                "cov_rank": 29,
                "white_gfp_baseline": 1.0 + 0.02 * i,
                "peak_snr": {"faces": 4.0 + 0.1 * i},
                "psf_peak_err_median_mm": {"dSPM": 8.0 + 0.3 * i, "sLORETA": 2.0 + 0.1 * i},
                "loc_error_true_mm": {"faces/sLORETA": 5.0 + 0.5 * i},
                "warnings": [],
                "status_reasons": [],
            }
        )
    out[3]["epochs"]["faces"] = 5  # outlier
    out[3]["status"] = "warning"
    out[3]["warnings"] = ["Data: condition faces: 45 of 50 epochs dropped (> 30%)"]
    return out


def test_cohort_report_table_outliers_and_grand_averages(synthetic, tmp_path):
    sums = _cohort_summaries()
    ga_path = tmp_path / "task-x_cond-faces_desc-dSPM_grandavg.nc"
    ga = synthetic["stcs"][("faces", "dSPM")].copy()
    ga.attrs["failed_subjects"] = "json:" + json.dumps({"07": "LinAlgError <x>"})
    ga.to_netcdf(ga_path)
    out = tmp_path / "group" / "cohort_report.html"
    doc = cohort_report(
        sums,
        grand_averages={("faces", "dSPM"): ga_path, ("cars", "dSPM"): tmp_path / "missing.nc"},
        links={s["subject"]: f"../sub-{s['subject']}/r.html" for s in sums},
        task="x",
        out=out,
    )
    assert out.read_text(encoding="utf-8") == doc
    assert 'table id="cohort" class="sortable"' in doc
    assert doc.count('<tr class="st-row-warning">') == 1
    assert 'href="../sub-04/r.html"' in doc
    # the one outlying value (5 epochs vs ~40) is flagged, nothing else
    outl = re.search(r'<section id="outliers">.*?</section>', doc, re.S).group(0)
    assert "epochs faces" in outl and outl.count("<tr>") == 2  # header + one row
    assert doc.count('class="outlier"') == 1
    assert 'src="data:image/png;base64,' in doc
    assert "missing: grand average cars/dSPM" in doc
    assert "mean error to true dipoles sLORETA (mm)" in doc
    assert "sub-07: LinAlgError &lt;x&gt;" in doc
    assert not re.search(r'(src|href)="(https?:)?//', doc)


def test_cohort_outliers_flagged_only_on_the_bad_side():
    """A localisation error far below the cohort's, or many more epochs, is not a problem."""
    sums = _cohort_summaries()
    sums[3]["epochs"]["faces"] = 43  # back to normal
    sums[3]["status"], sums[3]["warnings"] = "ok", []
    sums[1]["loc_error_true_mm"]["faces/sLORETA"] = 0.1  # far better than the others
    sums[2]["epochs"]["cars"] = 400  # far more epochs than the others
    sums[4]["psf_peak_err_median_mm"]["dSPM"] = 60.0  # far worse
    sums[5]["white_gfp_baseline"] = 0.2  # whitened GFP: both sides are bad
    doc = cohort_report(sums)
    outl = re.search(r'<section id="outliers">.*?</section>', doc, re.S).group(0)
    assert "median PSF peak error dSPM" in outl and "whitened baseline GFP" in outl
    assert "true dipoles" not in outl and "epochs cars" not in outl
    assert doc.count('class="outlier"') == 2


def test_reports_from_netcdf_files_and_classify_paths(synthetic, tmp_path):
    d = tmp_path / "sub-05" / "eeg"
    d.mkdir(parents=True)
    paths = []
    for kind in ("montage", "fwd", "epochs", "cov", "snr", "resolution"):
        ds = synthetic[kind].copy()
        ds.attrs = {
            k: (("json:" + json.dumps(v)) if isinstance(v, list | dict) else v)
            for k, v in ds.attrs.items()
        }
        p = d / f"sub-05_task-x_{FILE_SUFFIXES[kind]}.nc"
        ds.to_netcdf(p)
        paths.append(p)
    for cond, ds in synthetic["evokeds"].items():
        p = d / f"sub-05_task-x_cond-{cond}_ave.nc"
        ds.to_netcdf(p)
        paths.append(p)
    for (cond, m), ds in synthetic["stcs"].items():
        p = d / f"sub-05_task-x_cond-{cond}_desc-{m}_stc.nc"
        ds.to_netcdf(p)
        paths.append(p)
    truth = tmp_path / "demo_truth.json"
    truth.write_text(
        json.dumps(
            {
                "subjects": {
                    "05": {
                        "dipoles": {
                            c: {"pos": synthetic["truth"][c][0].tolist()}
                            for c in synthetic["truth"]
                        }
                    }
                }
            }
        )
    )
    kw = classify_paths(paths + [truth, d / "unrelated.txt"])
    assert set(kw["evokeds"]) == {"faces", "cars"}
    assert set(kw["stcs"]) == {
        ("faces", "dSPM"),
        ("faces", "sLORETA"),
        ("cars", "dSPM"),
        ("cars", "sLORETA"),
    }
    summary = subject_summary("05", **kw)
    assert summary["status"] in ("ok", "warning"), summary["status_reasons"]
    assert summary["n_excluded"] == 2
    assert len(summary["loc_error_true_mm"]) == 4


# --- the demo-like report: source maps on the ico shell, sliders, readable figures ------------

DEMO_CONDS = ("auditory", "visual", "somatosensory")
DEMO_METHODS = ("dSPM", "sLORETA", "eLORETA")


def _text_boxes(fig):
    """(text, window extent) of every text the drawn figure shows."""
    from matplotlib.axes import Axes
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    skip, out = set(), []
    for ax in fig.findobj(lambda a: isinstance(a, Axes)):
        for axis in (ax.xaxis, ax.yaxis):
            labels = axis.get_majorticklabels() + axis.get_minorticklabels()
            skip.update(id(t) for t in [*labels, axis.label, axis.offsetText])
            if not (ax.axison and axis.get_visible()):
                continue
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(abs(hi - lo), 1e-300)
            for lab, loc in zip(
                axis.get_majorticklabels(), axis.get_majorticklocs(), strict=False
            ):
                if lo - tol <= loc <= hi + tol and lab.get_visible() and lab.get_text():
                    out.append(lab)
            out += [t for t in (axis.label, axis.offsetText) if t.get_visible() and t.get_text()]
    out += [
        t
        for t in fig.findobj(lambda a: isinstance(a, Text))
        if id(t) not in skip and t.get_visible() and t.get_text().strip()
    ]
    return [(t, t.get_window_extent(renderer)) for t in out]


class _FigureCheck:
    """Called with every embedded figure: layout engine, font sizes, overlapping texts."""

    def __init__(self):
        self.n, self.problems = 0, []

    def __call__(self, fig):
        from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine

        self.n += 1
        name = fig.get_suptitle() or f"figure {self.n}"
        if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine | TightLayoutEngine):
            self.problems.append(f"{name}: no constrained or tight layout")
        boxes = _text_boxes(fig)
        small = sorted({t.get_text() for t, _ in boxes if t.get_fontsize() < 10})
        if small:
            self.problems.append(f"{name}: text under 10 pt: {small[:5]}")
        for i, (t1, b1) in enumerate(boxes):
            for t2, b2 in boxes[i + 1 :]:
                w = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
                h = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
                if w > 1 and h > 1:
                    self.problems.append(
                        f"{name}: {t1.get_text()!r} overlaps {t2.get_text()!r} ({w:.0f}x{h:.0f} px)"
                    )
        fig_w = fig.get_size_inches()[0] * _html.DPI
        outside = [t.get_text() for t, b in boxes if b.x0 < -1 or b.x1 > fig_w + 1]
        if outside:
            self.problems.append(f"{name}: text cut at the figure's edge: {outside[:3]}")


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory):
    """A subject report like the demo's (3 conditions x 3 methods on the 642-source ico
    shell with its triangles, -0.2 to 0.5 s), every figure checked as it is embedded."""
    inputs = _synthetic(
        conditions=DEMO_CONDS, methods=DEMO_METHODS, ico=True, tmin=-0.2, tmax=0.5, seed=4
    )
    check = _FigureCheck()
    _html.FIGURE_HOOKS.append(check)
    try:
        out = tmp_path_factory.mktemp("demo") / "sub-01" / "sub-01_task-demo_report.html"
        doc, summary = subject_report("01", task="demo", out=out, return_summary=True, **inputs)
    finally:
        _html.FIGURE_HOOKS.remove(check)
    return out, doc, summary, inputs, check


def test_demo_subject_report_is_small_with_maps_and_sliders(demo_like):
    out, doc, summary, _, _ = demo_like
    assert out.stat().st_size < 5e6  # the demo's report stays easy to send and open
    assert summary["status"] in ("ok", "warning"), summary["status_reasons"]
    # one slider per condition, 15 frames each by default
    assert doc.count('<div class="slider">') == len(DEMO_CONDS)
    assert doc.count('class="frame"') == 15 * len(DEMO_CONDS)
    assert doc.count('type="range"') == len(DEMO_CONDS)
    # a map figure per estimate, every figure sized for the page (about 1 100 px wide)
    assert doc.count('alt="source maps ') == len(DEMO_CONDS) * len(DEMO_METHODS)
    widths = [int(w) for w in re.findall(r'<img class="fig"[^>]* width="(\d+)"', doc)]
    assert widths and max(widths) <= 1100 and min(widths) >= 1000
    # peaks in the response window, with a place a reader understands; errors to the truth
    assert "where (approx.)" in doc and "response window" in doc
    assert len(summary["loc_error_true_mm"]) == len(DEMO_CONDS) * len(DEMO_METHODS)


def test_every_figure_is_laid_out_readable_and_without_overlaps(demo_like):
    *_, check = demo_like
    assert check.n >= 20  # figures and the sliders' frames went through the check
    assert check.problems == []


def test_figure_check_sees_overlaps_small_text_and_missing_layout():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title("title")
    ax.text(0.5, 1.02, "on the title", transform=ax.transAxes, ha="center", fontsize=8)
    fig.savefig(io.BytesIO(), format="png", dpi=_html.DPI)
    check = _FigureCheck()
    check(fig)
    text = "\n".join(check.problems)
    assert "no constrained or tight layout" in text
    assert "under 10 pt" in text and "'on the title' overlaps 'title'" in text


def test_report_options_and_their_defaults():
    import yaml

    schema = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    )
    props = schema["properties"]["report"]["properties"]
    default = Options()
    for key, spec in props.items():  # the documented defaults are the code's
        assert list(np.atleast_1d(getattr(default, key))) == list(np.atleast_1d(spec["default"]))
    t = np.arange(-0.2, 0.5001, 0.004)
    assert Options().window(t) == pytest.approx((0.05, 0.45))
    opts = Options.from_config({"report": {"response_window": [0.1, 0.3], "n_peaks": 2}})
    assert opts.window(t) == (0.1, 0.3) and opts.n_peaks == 2
    assert Options.from_config({"response_window": [-0.1, None]}).window(t)[0] == 0.0
    with pytest.raises(ValueError, match="report.views"):
        Options.from_config({"views": ["above"]})
    assert t_quantile(1) == pytest.approx(12.706) and t_quantile(100) == pytest.approx(1.984, 0.01)


def test_whitened_baseline_flag_and_banner_name_the_warning(synthetic):
    """A covariance 4x too small: whitened baseline GFP ~4, flagged above report.max_baseline_gfp
    (2 by default), and the banner counts and names the warning with a link."""
    inputs = {k: synthetic[k] for k in ("montage", "epochs", "evokeds")}
    cov = synthetic["cov"].copy()
    cov["cov"] = cov["cov"] / 4
    inputs["montage"] = inputs["montage"].copy()
    inputs["montage"].attrs = dict(inputs["montage"].attrs, warnings=["reader: odd <header>"])
    s = subject_summary("07", cov=cov, **inputs)
    assert 3 < s["white_gfp_baseline"] < 5
    assert any("whitened baseline GFP of condition faces" in w for w in s["warnings"])
    assert s["section_status"]["cov"] == "warning" and s["n_notes"] == 1
    s2 = subject_summary("07", cov=cov, options={"max_baseline_gfp": 6.0}, **inputs)
    assert s2["section_status"]["cov"] == "ok"
    from exgsrc.report.subject import banner

    issues = [
        ("cov", "Noise covariance", "warning", "whitened baseline GFP of condition rt is 3.4"),
        ("data", "Data", "note", "reader: odd <header>"),
    ]
    html_ = banner("warning", issues)
    assert "1 warning, 1 note" in html_ and '<a href="#cov">Noise covariance</a>' in html_
    assert "odd &lt;header&gt;" in html_ and "without warnings" not in html_
    ok = banner("ok", issues[1:])
    assert "all steps completed without warnings; 1 note" in ok and "<ol>" in ok


def _cohort_inputs(n_sub=4):
    """Grand average, the subjects' estimates and source space of a small ico cohort."""
    stcs, truth, sums = {}, {}, []
    for i in range(n_sub):
        sub = f"{i + 1:02d}"
        d = _synthetic(
            conditions=("auditory",), methods=("sLORETA",), ico=True, seed=10 + i, tmin=-0.2
        )
        stcs[sub] = d["stcs"][("auditory", "sLORETA")]
        truth[sub] = {"dipoles": {"auditory": {"pos": d["truth"]["auditory"][0].tolist()}}}
        sums.append(dict(_cohort_summaries(n_sub)[i], subject=sub))
    arr = np.stack([ds["stc"].values for ds in stcs.values()])
    ga = next(iter(stcs.values())).copy()
    ga["stc"] = (ga["stc"].dims, arr.mean(axis=0), dict(ga["stc"].attrs))
    ga["stc_sd"] = (ga["stc"].dims, arr.std(axis=0, ddof=1))
    ga.attrs.update(n_subjects=n_sub, failed_subjects={})
    return sums, ga, stcs, d["src"], {"subjects": truth}


def test_cohort_grand_average_shows_the_subjects(tmp_path):
    sums, ga, stcs, src, truth = _cohort_inputs()
    key = ("auditory", "sLORETA")
    doc = cohort_report(
        sums,
        grand_averages={key: ga},
        subject_stcs={key: stcs},
        src=src,
        truth=truth,
        out=tmp_path / "cohort_report.html",
    )
    assert "the 4 subjects&#x27; own peaks" in doc
    assert doc.count('alt="grand average auditory sLORETA"') == 1
    # the table scrolls in its box, subject first; columns ordered for the reader
    assert '<div class="tablebox"><table id="cohort" class="sortable">' in doc
    heads = re.findall(r"<th [^>]*>(.*?)</th>", doc.split('id="cohort"')[1].split("</thead>")[0])
    assert heads[:4] == ["subject", "status", "flags", "epochs faces"]
    assert heads.index("whitened baseline GFP (worst condition)") < heads.index("channels kept")
    assert console_line("cohort report", "ok", "g/c.html", "4 subjects") == (
        "exgsrc: cohort report: ok (4 subjects) -> g/c.html"
    )


def _chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser: {CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = importlib.import_module("playwright.sync_api")
    return sync_api.sync_playwright()


def _launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


_VISIBLE_FRAME = "s => { const i = [...s.querySelectorAll('img.frame')].find(f => !f.hidden);"
_VISIBLE_FRAME += " return i ? i.src.length + ':' + i.src.slice(-40) : null; }"


def _check_page(browser, path, shots, name):
    """Open a report at 1 280 px: no error, no request, no horizontal overflow, every image
    decoded, the sliders switch frames; full-page and per-section screenshots."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests, dialogs = [], [], []
    page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
    page.on("request", lambda r, q=requests: q.append(r.url))
    page.on("dialog", lambda d, s=dialogs: (s.append(d.message), d.dismiss()))
    url = path.as_uri()
    page.goto(url, wait_until="load")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"{name}: horizontal overflow, page is {width} px wide"
    broken = page.evaluate(
        "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length"
    )
    assert broken == 0, f"{name}: {broken} images did not load"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}_full.png"), full_page=True)
    for anchor in ("status", "stcs", "grandavg"):
        if page.locator(f"#{anchor}").count():
            page.evaluate(f"document.getElementById('{anchor}').scrollIntoView()")
            page.screenshot(path=str(shots / f"{name}_{anchor}.png"))
    if page.locator("div.slider").count():  # the first condition: heading, slider, maps
        page.evaluate(
            "document.querySelector('div.slider').parentElement"
            ".querySelector('h3').scrollIntoView()"
        )
        page.screenshot(path=str(shots / f"{name}_maps.png"))
    for k in range(page.locator("div.slider").count()):
        sl = page.locator("div.slider").nth(k)
        before = sl.evaluate(_VISIBLE_FRAME)
        label = sl.locator("output").inner_text()
        sl.locator("input[type=range]").focus()
        at_start = sl.evaluate("s => s.querySelector('input').value === '0'")
        page.keyboard.press("End" if at_start else "Home")
        after = sl.evaluate(_VISIBLE_FRAME)
        assert after is not None and after != before, f"{name}: slider {k} did not move"
        assert sl.locator("output").inner_text() != label
        assert sl.evaluate("s => s.querySelectorAll('img.frame:not([hidden])').length") == 1
    external = [u for u in requests if u != url and not u.startswith("data:")]
    assert errors == [], errors
    assert external == [], external
    assert dialogs == []
    return page


@pytest.mark.browser
def test_reports_in_headless_chromium(xss_report, demo_like, tmp_path):
    """Subject and cohort reports in chromium at 1 280 px: no overflow, every image loads,
    the sliders work, hostile labels stay text, sorting and filtering work; screenshots.

    Screenshots go to EXGSRC_SCREENSHOTS (else a temporary folder); reports listed in
    EXGSRC_REPORT_PAGES (os.pathsep-separated, e.g. a workflow run's subject and cohort
    reports) are checked and photographed too.
    """
    sub_html, _, summary, _ = xss_report
    demo_html = demo_like[0]
    sums, ga, stcs, src, truth = _cohort_inputs()
    sums[0] = dict(summary, subject="01")
    coh_html = sub_html.parent.parent / "group" / "cohort_report.html"
    key = ("auditory", "sLORETA")
    cohort_report(
        sums,
        grand_averages={key: ga},
        subject_stcs={key: stcs},
        src=src,
        truth=truth,
        links={"01": "../sub-x/sub-x_task-t_report.html"},
        out=coh_html,
    )
    shots = Path(os.environ.get("EXGSRC_SCREENSHOTS") or tmp_path / "shots")
    extra = [Path(p) for p in os.environ.get("EXGSRC_REPORT_PAGES", "").split(os.pathsep) if p]
    with _chromium() as p:
        browser = _launch(p)
        try:
            page = _check_page(browser, sub_html, shots, "xss_subject")
            assert XSS in page.text_content("body")  # shown as text, not executed
            page.close()
            _check_page(browser, demo_html, shots, "demo_subject").close()
            page = _check_page(browser, coh_html, shots, "cohort")
            # the inline sorting/filtering script; the table scrolls inside its box
            col = page.locator("#cohort thead th", has_text="channels kept")
            idx = page.locator("#cohort thead th").evaluate_all(
                "(ths) => ths.findIndex(t => t.textContent.startsWith('channels kept'))"
            )
            col.click()
            col.click()
            first = page.locator("#cohort tbody tr").first.locator("td").nth(idx)
            assert first.inner_text().strip() == "32"  # descending: sub-01 has 32
            box = page.evaluate(
                "(() => { const b = document.querySelector('.tablebox');"
                " return [b.scrollWidth, b.clientWidth]; })()"
            )
            assert box[1] <= 1280
            page.fill("input.filter", "45 of 50")  # a warning of sub-04 only
            assert page.locator("#cohort tbody tr:visible").count() == 1
            page.close()
            for k, path in enumerate(extra):
                _check_page(browser, path, shots, f"page{k}_{path.stem}").close()
        finally:
            browser.close()
    assert (shots / "demo_subject_stcs.png").stat().st_size > 10000
    assert (shots / "cohort_grandavg.png").stat().st_size > 10000


def test_build_cohort_from_summary_files(tmp_path):
    files = []
    for s in _cohort_summaries(4):
        sub = s["subject"]
        s["report"] = str(tmp_path / f"sub-{sub}" / f"sub-{sub}_task-x_report.html")
        f = tmp_path / f"sub-{sub}" / f"sub-{sub}_task-x_report.json"
        f.parent.mkdir()
        f.write_text(json.dumps(s))
        files.append(f)
    files.append(tmp_path / "sub-09" / "sub-09_task-x_report.json")  # never written
    out = tmp_path / "group" / "cohort_report.html"
    doc = build_cohort(files, out, task="x")
    assert out.is_file()
    assert 'href="../sub-02/sub-02_task-x_report.html"' in doc
    row = re.search(r'<tr class="st-row-failed">.*?</tr>', doc, re.S).group(0)
    assert ">09<" in row and "unreadable" in row


def test_build_cohort_lists_a_failed_subject_report(tmp_path):
    """A subject report step that failed (run_step's JSON placeholder) is a failed row."""
    store = importlib.import_module("exgsrc.store")
    files = []
    for s in _cohort_summaries(4):
        f = tmp_path / f"sub-{s['subject']}_task-x_report.json"
        f.write_text(json.dumps(s))
        files.append(f)
    failed = tmp_path / "sub-09_task-x_report.json"
    store.write_failed_outputs([failed], "MemoryError: <figure>")
    doc = build_cohort(files + [failed], tmp_path / "cohort_report.html", task="x")
    row = re.search(r'<tr class="st-row-failed">.*?</tr>', doc, re.S).group(0)
    assert ">09<" in row and "report step failed: MemoryError: &lt;figure&gt;" in row


@pytest.mark.workflow
def test_report_rules_in_workflow_dag(tmp_path):
    """report.smk plugs into the Snakefile: both rules, their outputs, and the report flag."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "config", tmp_path / "config")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "-d", str(tmp_path)]
    cmd += ["-n", "--configfile", "config/test_tiny.yaml"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    for sub in ("01", "02"):
        assert f"results/sub-{sub}/sub-{sub}_task-demo_report.html" in out
        assert f"results/sub-{sub}/sub-{sub}_task-demo_report.json" in out
    assert "results/group/cohort_report.html" in out
    assert re.search(r"report_subject\s+2\b", out) and re.search(r"report_cohort\s+1\b", out)


def test_failed_step_files_written_by_the_store(synthetic, tmp_path):
    """Placeholders from exgsrc.store.write_failed render as failed sections with the reason."""
    store = importlib.import_module("exgsrc.store")
    cov = store.write_failed(tmp_path / "sub-06_task-x_cov.nc", "ValueError: only 3 epochs")
    summary = subject_summary("06", **dict(synthetic, cov=cov))
    assert summary["section_status"]["cov"] == "failed"
    assert any("only 3 epochs" in r for r in summary["status_reasons"])


def test_every_step_failed_still_renders(tmp_path):
    """A subject whose montage step failed: every section says failed, with the reason."""
    store = importlib.import_module("exgsrc.store")
    files = {}
    for kind, suffix in [
        ("montage", "montage"),
        ("headmodel", "headmodel"),
        ("fwd", "fwd"),
        ("epochs", "epo"),
        ("cov", "cov"),
        ("resolution", "resolution"),
    ]:
        files[kind] = store.write_failed(
            tmp_path / f"sub-07_task-x_{suffix}.nc", "ValueError: only 2 good EEG channels <Cz>"
        )
    ev = {"a": store.write_failed(tmp_path / "sub-07_task-x_cond-a_ave.nc", "upstream failed")}
    doc, summary = subject_report("07", evokeds=ev, return_summary=True, **files)
    secs = _sections(doc)
    assert {k: secs[k] for k in ("data", "head", "forward", "cov", "evokeds", "resolution")} == {
        k: "failed" for k in ("data", "head", "forward", "cov", "evokeds", "resolution")
    }
    assert "only 2 good EEG channels &lt;Cz&gt;" in doc
    assert summary["status"] == "failed"
