"""End-to-end workflow runs on varied inputs (run through Snakemake's CLI).

The real dataset (../shared/data/bids-eeglab-squares), events coded in other
columns and by tags, float32 outputs and high-density nets rewritten by MNE-BIDS.
Split from tests/test_workflow.py (the tiny demo run and what is tested on it) so
that the two files run side by side on two test workers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_workflow import ROOT, TINY, _rule_counts, _sub, _tsv, snakemake

pytestmark = pytest.mark.workflow


def test_shipped_real_dataset_config_plans_the_full_run(tmp_path, shared_bids_root):
    """config/eeglab_squares.yaml (the README's real-data command) validates and plans
    every step; only bids_root is made absolute, as the file's path is relative to
    the project folder."""
    res = snakemake(
        tmp_path,
        "--config",
        f"bids_root={shared_bids_root}",
        "-n",
        "--quiet",
        "rules",
        configfile=ROOT / "config" / "eeglab_squares.yaml",
    )
    counts = _rule_counts(res.stdout)
    # 1 subject x 2 conditions (square, rt), one job of 3 methods each; one evoked job
    # of both conditions; resolution on by default
    assert counts["source_estimate"] == 2 and counts["evoked"] == 1, counts
    assert counts["resolution"] == 1 and counts["report_cohort"] == 1, counts
    assert "demo_bids" not in counts


def test_float32_precision_shrinks_data_files_but_not_the_models(tmp_path):
    """precision: float32 stores the data outputs in float32; the model files (forward,
    noise covariance, inverse operator, ...) stay float64, else the rounded covariance
    is indefinite and the inverse step fails (it did, before they were kept)."""
    import netCDF4

    override = tmp_path / "float32.yaml"
    override.write_text(
        "precision: float32\non_error: raise\n"
        "demo:\n  n_subjects: 1\n  conditions: [visual]\n"
        "inverse:\n  methods: [sLORETA]\n"
    )
    # the override on top of the tiny config (a later --configfile replaces the helper's)
    res = snakemake(tmp_path, "--configfile", str(TINY), str(override))
    assert "steps (100%) done" in res.stderr + res.stdout

    def dtypes(suffix):
        with netCDF4.Dataset(_sub(tmp_path, "01", suffix)) as nc:
            return {k: str(v.dtype) for k, v in nc.variables.items() if v.ndim > 1}

    assert dtypes("cond-visual_desc-sLORETA_stc.nc") == {"stc": "float32"}
    assert dtypes("epo.nc")["epochs"] == "float32"
    for model in ("fwd.nc", "cov.nc", "inv.nc", "src.nc"):
        assert all(t in ("float64", "int64") for t in dtypes(model).values()), model
    qc = _tsv(tmp_path / "results" / "group" / "qc.tsv")
    assert [row["status"] for row in qc] == ["ok"]


@pytest.mark.slow
def test_real_dataset_end_to_end(tmp_path, shared_bids_root):
    cfg = tmp_path / "real.yaml"
    cfg.write_text(
        "\n".join(
            [
                f"bids_root: {shared_bids_root}",
                "output: results",
                "task: squares",
                "conditions: [square]",
                "source_space: {kind: ico, grade: 2}",
                "inverse: {methods: [sLORETA]}",
                "resolution: {enabled: false}",
                "on_error: raise",
            ]
        )
        + "\n"
    )
    snakemake(tmp_path, configfile=cfg)
    stc = xr.open_dataset(
        tmp_path / "results/sub-01/eeg/sub-01_task-squares_cond-square_desc-sLORETA_stc.nc"
    )
    assert stc.sizes["source"] == 162 and stc.attrs["condition"] == "square"
    assert stc["time"].values[1] - stc["time"].values[0] == pytest.approx(1 / 128)
    fwd = xr.open_dataset(tmp_path / "results/sub-01/eeg/sub-01_task-squares_fwd.nc")
    assert fwd.sizes["channel"] == 30 and "EOG1" not in fwd["channel"].values
    qc = _tsv(tmp_path / "results/group/qc.tsv")
    assert qc[0]["status"] == "ok" and qc[0]["n_eeg_used"] == "30"


# ---------------------------------------------------------------------------
# conditions from another events column, merged codes, tags and contrasts


def _recode_events(root, column_of):
    """Rewrite every events.tsv of a demo BIDS: ``column_of(trial_type, i)`` gives the new
    row's {column: value} (the demo's own trial_type/value columns are dropped)."""
    for path in sorted(root.glob("sub-*/eeg/*_events.tsv")):
        rows = _tsv(path)
        new = [
            {"onset": r["onset"], "duration": r["duration"], **column_of(r["trial_type"], i)}
            for i, r in enumerate(rows)
        ]
        header = list(new[0])
        path.write_text(
            "\t".join(header)
            + "\n"
            + "".join("\t".join(str(r[h]) for h in header) + "\n" for r in new)
        )


def _value_coded(cond, i):
    """auditory -> codes 1/2, visual -> 11/12 (alternating), in `value`; no trial_type."""
    return {"value": {"auditory": 1, "visual": 11}[cond] + i % 2}


def _tagged(cond, i):
    """Hierarchical trial_type (auditory/left, visual/right, ...), MNE style."""
    return {"trial_type": f"{cond}/{'left' if i % 2 else 'right'}"}


@pytest.fixture(scope="module")
def small_bids(tmp_path_factory):
    """2 subjects x 2 conditions (16 trials each) of the demo simulator, as written."""
    from exgsrc.simulate import make_demo_bids

    root = tmp_path_factory.mktemp("bids_small")
    make_demo_bids(root, n_subjects=2, conditions=("auditory", "visual"), seed=3, n_trials=16)
    return root


def _copy_recoded(small_bids, tmp_path, column_of):
    root = tmp_path / "bids"
    shutil.copytree(small_bids, root)
    _recode_events(root, column_of)
    return root


def _events_cfg(tmp_path, root, body):
    cfg = tmp_path / "events.yaml"
    cfg.write_text(
        f"bids_root: {root}\noutput: results\ntask: demo\n"
        "inverse: {methods: [sLORETA]}\nresolution: {enabled: false}\non_error: raise\n" + body
    )
    return cfg


def test_value_column_merged_codes_and_a_contrast(small_bids, tmp_path):
    """Conditions coded in `value` (two codes each, merged by name) and a contrast: its
    evoked, source estimates and grand average exist, are labelled as a contrast, and
    open_source_estimates shows it as a condition."""
    from exgsrc.store import open_dataset, open_source_estimates

    root = _copy_recoded(small_bids, tmp_path, _value_coded)
    cfg = _events_cfg(
        tmp_path,
        root,
        "events: {column: value}\n"
        "conditions: {auditory: [1, 2], visual: [11, 12]}\n"
        "contrasts:\n  - {name: visual-auditory, conditions: {visual: 1, auditory: -1}}\n",
    )
    snakemake(tmp_path, configfile=cfg, timeout=900)  # ~2 min alone on 2 cores
    out = tmp_path / "results"
    epo = open_dataset(_sub(tmp_path, "01", "epo.nc"))
    assert epo.attrs["events_column"] == "value"
    codes = {k: sorted(v) for k, v in epo.attrs["condition_codes"].items()}
    assert codes == {"auditory": ["1", "2"], "visual": ["11", "12"]}
    assert set(epo["condition"].values) <= {"1", "2", "11", "12"}  # each epoch's code
    aud = open_dataset(_sub(tmp_path, "01", "cond-auditory_ave.nc"))
    vis = open_dataset(_sub(tmp_path, "01", "cond-visual_ave.nc"))
    is_aud = np.isin(epo["condition"].values, ["1", "2"])
    assert aud.attrs["nave"] == is_aud.sum() and sorted(aud.attrs["condition_codes"]) == ["1", "2"]
    np.testing.assert_allclose(
        aud["evoked"].values, epo["epochs"].values[is_aud].mean(0), rtol=1e-12
    )
    lab = "visualX2Dauditory"  # exgsrc.labels.condition_label("visual-auditory")
    con = open_dataset(_sub(tmp_path, "01", f"cond-{lab}_ave.nc"))
    assert con.attrs["condition"] == con.attrs["contrast"] == "visual-auditory"
    assert con.attrs["contrast_weights"] == {"visual": 1.0, "auditory": -1.0}
    naves = {"visual": vis.attrs["nave"], "auditory": aud.attrs["nave"]}
    assert con.attrs["contrast_naves"] == naves
    assert con.attrs["nave"] == pytest.approx(1 / (1 / naves["visual"] + 1 / naves["auditory"]))
    np.testing.assert_allclose(
        con["evoked"].values, vis["evoked"].values - aud["evoked"].values, rtol=1e-12
    )
    stc = open_dataset(_sub(tmp_path, "01", f"cond-{lab}_desc-sLORETA_stc.nc"))
    assert stc.attrs["contrast"] == "visual-auditory" and stc.attrs["nave"] == con.attrs["nave"]
    assert stc.attrs["contrast_weights"] == con.attrs["contrast_weights"]
    ga = open_dataset(out / "group" / f"task-demo_cond-{lab}_desc-sLORETA_grandavg.nc")
    assert ga.attrs["contrast"] == "visual-auditory" and list(ga.attrs["subjects"]) == [
        "01",
        "02",
    ]
    cohort = open_source_estimates(out)
    assert set(cohort["condition"].values) == {"auditory", "visual", lab}
    flags = dict(zip(cohort["condition"].values, cohort["is_contrast"].values, strict=True))
    assert flags == {"auditory": False, "visual": False, lab: True}
    got = cohort["contrast_weights"].sel(condition=lab).item()
    assert json.loads(got) == {"visual": 1.0, "auditory": -1.0}
    assert cohort["condition_name"].sel(condition=lab).item() == "visual-auditory"
    assert (cohort["status"].values == "ok").all()
    np.testing.assert_array_equal(
        cohort["stc"].sel(subject="01", condition=lab, inverse_method="sLORETA").values,
        stc["stc"].values,
    )
    qc = _tsv(out / "group" / "qc.tsv")
    assert {r["status"] for r in qc} == {"ok"}
    assert qc[0][f"snr_peak_{lab}"] != "n/a" and f"epochs_{lab}" not in qc[0]
    assert qc[0]["epochs_auditory"] == f"{aud.attrs['nave']}/16"
    snr = open_dataset(_sub(tmp_path, "01", "snr.nc"))
    assert snr["nave"].sel(condition=lab).item() == pytest.approx(con.attrs["nave"])
    html = (out / "sub-01" / "sub-01_task-demo_report.html").read_text()
    assert "visual-auditory (contrast)" in html
    assert "visual-auditory (contrast)" in (out / "group" / "cohort_report.html").read_text()


def _dry_run_counts(tmp_path, cfg):
    return _rule_counts(snakemake(tmp_path, "-n", "--quiet", "rules", configfile=cfg).stdout)


def test_tags_select_hierarchical_trial_types(small_bids, tmp_path):
    """MNE's /-tag rule at DAG time: `auditory` takes auditory/left and auditory/right."""
    root = _copy_recoded(small_bids, tmp_path, _tagged)
    counts = _dry_run_counts(tmp_path, _events_cfg(tmp_path, root, "conditions: [auditory]\n"))
    # one evoked job per subject; one source-estimate job per subject and condition
    assert counts["evoked"] == 2 and counts["source_estimate"] == 2  # 2 subjects x 1
    counts = _dry_run_counts(tmp_path, _events_cfg(tmp_path, root, "conditions: all\n"))
    assert counts["source_estimate"] == 8  # 4 distinct trial types x 2 subjects
    counts = _dry_run_counts(
        tmp_path, _events_cfg(tmp_path, root, "conditions: [left, right, auditory]\n")
    )
    assert counts["source_estimate"] == 6  # overlapping conditions: one code in two of them


def _dry_run_error(tmp_path, cfg):
    res = snakemake(tmp_path, "-n", configfile=cfg, check=False)
    assert res.returncode != 0
    return res.stdout + res.stderr


def test_bad_events_config_is_a_one_line_error_at_dag_time(small_bids, tmp_path):
    root = _copy_recoded(small_bids, tmp_path, _value_coded)
    events_tsv = root / "sub-01" / "eeg" / "sub-01_task-demo_events.tsv"
    # the default column (trial_type) exists in no events.tsv
    text = _dry_run_error(tmp_path, _events_cfg(tmp_path, root, ""))
    assert "config events.column='trial_type': no events.tsv of task 'demo' has this" in text
    assert str(events_tsv) in text
    text = _dry_run_error(tmp_path, _events_cfg(tmp_path, root, "events: {column: code}\n"))
    assert "config events.column='code'" in text
    # a merged condition whose codes match nothing
    body = "events: {column: value}\nconditions: {auditory: [1, 2], visual: [7, 8]}\n"
    text = _dry_run_error(tmp_path, _events_cfg(tmp_path, root, body))
    line = next(ln for ln in text.splitlines() if "config conditions.visual" in ln)
    assert "[7, 8]" in line and "no event code matches" in line and str(events_tsv) in line
    assert "'11'" in line  # the codes found
    # a contrast naming a missing condition
    body = (
        "events: {column: value}\nconditions: {auditory: [1, 2], visual: [11, 12]}\n"
        "contrasts: [{name: d, conditions: {visual: 1, auditroy: -1}}]\n"
    )
    text = _dry_run_error(tmp_path, _events_cfg(tmp_path, root, body))
    assert "config contrasts[0] ('d').conditions: ['auditroy'] not among the conditions" in text
    # the schema: a zero weight, a contrast without conditions
    body = "contrasts: [{name: d, conditions: {visual: 0}}]\n"
    text = _dry_run_error(tmp_path, _events_cfg(tmp_path, root, body))
    assert "contrasts" in text


def _export_with_mne_bids(demo_root, out_root, subject="01", fmt="BrainVision"):
    """Rewrite a simulated subject as MNE-BIDS writes a lab's recording (positions from
    electrodes.tsv as an MNE montage, events as annotations)."""
    import mne
    import mne_bids

    eeg = Path(demo_root) / f"sub-{subject}" / "eeg"
    raw = mne.io.read_raw_edf(
        eeg / f"sub-{subject}_task-demo_eeg.edf", preload=True, verbose=False
    )
    chans = _tsv(eeg / f"sub-{subject}_task-demo_channels.tsv")
    raw.set_channel_types({r["name"]: r["type"].lower() for r in chans if r["type"] != "EEG"})
    raw.info["bads"] = [r["name"] for r in chans if r["status"] == "bad"]
    elec = {
        r["name"]: [float(r[c]) for c in "xyz"] for r in _tsv(next(eeg.glob("*_electrodes.tsv")))
    }
    coords = json.loads(next(eeg.glob("*_coordsystem.json")).read_text())
    fid = coords["AnatomicalLandmarkCoordinates"]
    montage = mne.channels.make_dig_montage(
        ch_pos=elec, nasion=fid["NAS"], lpa=fid["LPA"], rpa=fid["RPA"], coord_frame="head"
    )
    raw.set_montage(montage, on_missing="ignore")
    events = _tsv(eeg / f"sub-{subject}_task-demo_events.tsv")
    raw.set_annotations(
        mne.Annotations(
            [float(e["onset"]) for e in events], 0.0, [e["trial_type"] for e in events]
        )
    )
    path = mne_bids.BIDSPath(subject=subject, task="demo", root=out_root, datatype="eeg")
    mne_bids.write_raw_bids(
        raw, path, format=fmt, allow_preload=True, overwrite=True, verbose=False
    )
    return out_root


@pytest.mark.slow
@pytest.mark.parametrize("net", ["GSN-HydroCel-129", "GSN-HydroCel-256"])
def test_high_density_net_end_to_end(tmp_path, net):
    """A high-density EGI net (cheek and neck electrodes), simulated and rewritten by
    MNE-BIDS as BrainVision, runs end to end; sLORETA and eLORETA find the dipoles."""
    from exgsrc.simulate import make_demo_bids

    conditions = ("auditory", "visual")
    truth = json.loads(
        Path(
            make_demo_bids(tmp_path / "sim", n_subjects=1, conditions=conditions, montage=net)
        ).read_text()
    )
    bids = _export_with_mne_bids(tmp_path / "sim", tmp_path / "bids")
    cfg = tmp_path / "hd.yaml"
    cfg.write_text(
        f"bids_root: {bids}\noutput: results\ntask: demo\n"
        "inverse: {methods: [sLORETA, eLORETA]}\nresolution: {enabled: false}\n"
    )
    snakemake(tmp_path, "--config", "on_error=raise", configfile=cfg, timeout=600)
    head = xr.open_dataset(_sub(tmp_path, "01", "headmodel.nc"))
    n_used = int(xr.open_dataset(_sub(tmp_path, "01", "montage.nc"))["used"].sum())
    assert head.sizes["channel"] == n_used > 100  # every good electrode, face and neck too
    assert int(head["fit_used"].sum()) < n_used  # the face was left out of the fit
    assert float(head["projection_distance"].max()) > 0.005
    errors = []
    for cond in conditions:
        dip = truth["subjects"]["01"]["dipoles"][cond]
        for method in ("sLORETA", "eLORETA"):
            ds = xr.open_dataset(_sub(tmp_path, "01", f"cond-{cond}_desc-{method}_stc.nc"))
            win = ds["stc"].sel(time=slice(dip["latency"] - 0.05, dip["latency"] + 0.05))
            peak = int(win.max("time").argmax("source"))
            pos = np.array([float(ds[c][peak]) for c in "xyz"])
            errors.append(np.linalg.norm(pos - np.asarray(dip["pos"])) * 1000)
    assert np.median(errors) < 10 and max(errors) < 20, errors
