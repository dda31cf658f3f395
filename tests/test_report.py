"""Tests of exgsrc.report: per-subject and cohort HTML reports.

Inputs are small synthetic xarray Datasets following ARCHITECTURE.md's
conventions (dims channel/source/orientation/time, x/y/z coords), written to
netCDF where the file path matters. The browser test drives Debian's chromium
through Playwright.
"""

from __future__ import annotations

import html
import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from exgsrc.report import cohort_report, robust_z, subject_report, subject_summary, whitened_gfp
from exgsrc.report._data import classify_paths
from exgsrc.report.subject import gfp_peaks
from exgsrc.steps.report import build_cohort
from exgsrc.store import FILE_SUFFIXES

XSS = "<script>alert(1)</script>"
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
):
    rng = np.random.default_rng(seed)
    n_ch = 32
    names = list(ch_names) if ch_names is not None else [f"E{i:02d}" for i in range(n_ch)]
    n_ch = len(names)
    ch_pos = _sphere_points(n_ch, RADIUS, rng, zmin=-0.2)
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
    times = np.arange(-0.1, 0.3, 0.004)
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
            "baseline": [-0.1, 0.0],
            "tmin": -0.1,
            "tmax": 0.3,
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
    return dict(
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


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


def _sections(doc):
    return dict(re.findall(r'<section id="([a-z]+)"><h2>.*?<span class="badge st-(\w+)">', doc))


def test_subject_report_has_every_section_and_no_external_resources(synthetic, tmp_path):
    out = tmp_path / "sub-01" / "sub-01_task-x_report.html"
    doc, summary = subject_report("01", task="x", out=out, return_summary=True, **synthetic)
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
    # head 1, forward 1, covariance 2, evoked 1 per condition, 1 per stc, resolution 2
    assert doc.count('src="data:image/png;base64,') == 1 + 1 + 2 + 2 + 4 + 2
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
        "02", return_summary=True, failures={"inverse": "did not converge"}, **inputs
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
    doc, summary = subject_report(XSS, task="t<i>", out=out, return_summary=True, **inputs)
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


@pytest.mark.browser
def test_reports_in_headless_chromium(xss_report, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser: {CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = importlib.import_module("playwright.sync_api")
    sub_html, _, summary, inputs = xss_report
    sums = _cohort_summaries()
    sums[0] = dict(summary, subject="01")
    coh_html = sub_html.parent.parent / "group" / "cohort_report.html"
    ga = next(iter(inputs["stcs"].items()))
    cohort_report(
        sums,
        grand_averages={ga[0]: ga[1]},
        links={"01": "../sub-x/sub-x_task-t_report.html"},
        out=coh_html,
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
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
        try:
            for path in (sub_html, coh_html):
                page = browser.new_page()
                errors, requests, dialogs = [], [], []
                page.on(
                    "console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.on("request", lambda r, q=requests: q.append(r.url))
                page.on("dialog", lambda d, s=dialogs: (s.append(d.message), d.dismiss()))
                url = path.as_uri()
                page.goto(url, wait_until="load")
                if path == coh_html:
                    # exercise the inline sorting/filtering script
                    page.click("#cohort thead th:nth-child(3)")
                    page.click("#cohort thead th:nth-child(3)")
                    first = page.locator("#cohort tbody tr").first.locator("td").nth(2)
                    assert first.inner_text().strip() == "32"  # descending: sub-01 has 32
                    page.fill("input.filter", "05")
                    visible = page.locator("#cohort tbody tr:visible").count()
                    assert visible == 1
                else:
                    assert XSS in page.text_content("body")  # shown as text, not executed
                page.screenshot(path=str(tmp_path / f"{path.stem}.png"), full_page=False)
                external = [u for u in requests if u != url and not u.startswith("data:")]
                assert errors == [], errors
                assert external == [], external
                assert dialogs == []
                assert (tmp_path / f"{path.stem}.png").stat().st_size > 1000
                page.close()
        finally:
            browser.close()


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
