"""End-to-end tests of the Snakemake workflow (run through Snakemake's CLI).

The tiny demo config (config/test_tiny.yaml: 2 subjects x 2 conditions, ico
grade 3, sLORETA + eLORETA) runs once per module in a temporary directory;
the tests then inspect its outputs, rerun, interrupt and resume it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TINY = ROOT / "config" / "test_tiny.yaml"


def snakemake(workdir, *args, configfile=TINY, check=True, timeout=900):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(configfile),
        *args,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if check and res.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"
        )
    return res


def _rule_counts(stdout):
    """{rule: number of jobs} from `snakemake -n --quiet rules` output."""
    counts = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def _tsv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf")
    # more threads for one rule through Snakemake's own option (README, "Threads")
    snakemake(wd, "--config", "on_error=raise", "--set-threads=resolution=2")
    return wd


def test_readme_output_examples_run(run, monkeypatch):
    """The README's examples that open workflow outputs run on a real run's folder."""
    from test_readme import readme_python_blocks

    blocks = [b for b in readme_python_blocks() if '"results' in b]
    assert len(blocks) == 2, blocks
    monkeypatch.chdir(run)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_jobs_run_with_their_rules_threads(run):
    """Snakemake's per-job thread count reaches the numerics (OMP/OPENBLAS_NUM_THREADS)."""
    from exgsrc._system import available_cpus

    logs = run / "results" / "logs"
    resolution = (logs / "resolution" / "sub-01.log").read_text()
    assert f"threads 2 (numerics use {min(2, available_cpus())})" in resolution
    epochs = (logs / "epochs" / "sub-01.log").read_text()
    assert "threads 1 (numerics use 1)" in epochs


def _sub(wd, sub, suffix):
    return wd / "results" / f"sub-{sub}" / "eeg" / f"sub-{sub}_task-demo_{suffix}"


def test_dry_run_dag(tmp_path):
    res = snakemake(tmp_path, "-n", "--quiet", "rules")
    counts = _rule_counts(res.stdout)
    assert counts["demo_bids"] == 1
    for rule in ("montage", "head_model", "source_space", "forward", "epochs", "noise_cov"):
        assert counts[rule] == 2, rule  # once per subject, shared by conditions
    assert counts["inverse_operator"] == 2
    assert counts["evoked"] == 2  # one job per subject: both conditions
    assert counts["source_estimate"] == 4  # 2 subjects x 2 conditions, both methods per job
    assert counts["grand_average"] == 4
    assert counts["qc_table"] == 1
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_shipped_defaults_when_run_from_another_directory(tmp_path):
    """`snakemake -s <checkout>/Snakefile --directory <elsewhere>` uses the shipped config."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path)]
    cmd += ["-n", "--quiet", "rules"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    counts = _rule_counts(res.stdout)
    assert counts["demo_bids"] == 1 and counts["forward"] == 6  # the 6-subject demo


def test_config_rejects_unknown_and_wrong_type(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "\ninvrse:\n  snr: 3\n")
    res = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert res.returncode != 0
    assert "invrse" in res.stdout + res.stderr
    bad.write_text(TINY.read_text() + "\nprecision: 64\n")
    res = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert res.returncode != 0 and "precision" in res.stdout + res.stderr
    # a volume grid with a loose orientation prior: refused before any job runs
    bad.write_text(TINY.read_text() + "\nsource_space: {kind: grid}\n")
    res = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert res.returncode != 0
    assert "inverse.loose=0.2 needs surface normals" in res.stdout + res.stderr
    bad.write_text(TINY.read_text() + "\nsource_space: {kind: grid}\ninverse: {loose: 1.0}\n")
    assert snakemake(tmp_path, "-n", configfile=bad, check=False).returncode == 0


def test_outputs_dims_coords_attrs(run):
    desc = json.loads((run / "results" / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "exgsrc"
    stc = xr.open_dataset(_sub(run, "01", "cond-auditory_desc-sLORETA_stc.nc"))
    assert stc["stc"].dims == ("source", "time")
    assert stc.sizes["source"] == 642  # ico grade 3
    for c in ("x", "y", "z"):
        assert stc[c].dims == ("source",) and stc[c].attrs["units"] == "m"
    assert stc["time"].attrs["units"] == "s"
    assert stc["time"].values[0] == pytest.approx(-0.2) and stc["time"].values[
        -1
    ] == pytest.approx(0.5)
    assert stc["stc"].attrs["units"] == "dimensionless" and stc["stc"].attrs["long_name"]
    assert stc.attrs["method"] == "sLORETA" and stc.attrs["condition"] == "auditory"
    for key in ("exgsrc_version", "config_sha256", "inputs", "created"):
        assert key in stc.attrs
    inputs = json.loads(stc.attrs["inputs"].removeprefix("json:"))
    assert {Path(i["path"]).name for i in inputs} == {
        "sub-01_task-demo_inv.nc",
        "sub-01_task-demo_cond-auditory_ave.nc",
    }
    assert all(len(i["sha256"]) == 64 for i in inputs)
    assert stc["stc"].encoding["zlib"] and stc["stc"].encoding["complevel"] == 4
    el = xr.open_dataset(_sub(run, "01", "cond-auditory_desc-eLORETA_stc.nc"))
    assert el["stc"].attrs["units"] == "A·m"
    fwd = xr.open_dataset(_sub(run, "02", "fwd.nc"))
    assert fwd["gain"].dims == ("channel", "source", "orientation")
    assert list(fwd["orientation"].values) == ["x", "y", "z"]
    mont = xr.open_dataset(_sub(run, "02", "montage.nc"))
    bad = [
        str(c)
        for c, s in zip(mont["channel"].values, mont["status"].values, strict=True)
        if s == "bad"
    ]
    assert bad and not set(bad) & {str(c) for c in fwd["channel"].values}  # bads excluded
    assert "VEOG" not in fwd["channel"].values  # non-EEG excluded
    cov = xr.open_dataset(_sub(run, "02", "cov.nc"))
    assert cov["cov"].dims == ("channel", "channel2")
    assert list(cov["channel"].values) == list(fwd["channel"].values)
    epo = xr.open_dataset(_sub(run, "01", "epo.nc"))
    assert epo["epochs"].dims == ("epoch", "channel", "time")
    assert set(epo["condition"].values) == {"auditory", "visual"}
    assert epo.sizes["epoch"] < 80  # the simulated blink epochs were rejected
    res = xr.open_dataset(_sub(run, "01", "resolution.nc"))
    assert list(res["inverse_method"].values) == ["sLORETA", "eLORETA"]
    assert res["psf_peak_err"].dims == ("inverse_method", "source")
    assert res["psf_peak_err"].sel(inverse_method="eLORETA").shape == (642,)
    snr = xr.open_dataset(_sub(run, "01", "snr.nc"))
    assert snr["snr"].dims == ("condition", "time")
    ga = xr.open_dataset(
        run / "results" / "group" / "task-demo_cond-visual_desc-sLORETA_grandavg.nc"
    )
    a = xr.open_dataset(_sub(run, "01", "cond-visual_desc-sLORETA_stc.nc"))["stc"].values
    b = xr.open_dataset(_sub(run, "02", "cond-visual_desc-sLORETA_stc.nc"))["stc"].values
    np.testing.assert_allclose(ga["stc"].values, (a + b) / 2, rtol=1e-12)
    qc = _tsv(run / "results" / "group" / "qc.tsv")
    assert [r["subject"] for r in qc] == ["01", "02"] and {r["status"] for r in qc} == {"ok"}
    for i, m in enumerate(["sLORETA", "eLORETA"]):
        med = np.median(res["psf_peak_err"].values[i]) * 1000
        assert float(qc[0][f"psf_peak_err_mm_median_{m}"]) == pytest.approx(med, abs=0.01)
    assert (run / "results" / "logs" / "forward" / "sub-01.log").is_file()
    assert (run / "results" / "benchmarks" / "forward" / "sub-01.tsv").is_file()


def test_open_source_estimates_stacks_the_cohort(run):
    from exgsrc.store import open_source_estimates

    ds = open_source_estimates(run / "results")
    assert ds["stc"].dims == ("subject", "condition", "inverse_method", "source", "time")
    assert list(ds["subject"].values) == ["01", "02"]
    assert set(ds["inverse_method"].values) == {"sLORETA", "eLORETA"}
    units = dict(zip(ds["inverse_method"].values, ds["units"].values, strict=True))
    assert units["eLORETA"] == "A·m"
    assert (ds["status"].values == "ok").all()
    one = xr.open_dataset(_sub(run, "02", "cond-visual_desc-eLORETA_stc.nc"))
    got = ds["stc"].sel(subject="02", condition="visual", inverse_method="eLORETA")
    np.testing.assert_array_equal(got.values, one["stc"].values)
    np.testing.assert_array_equal(ds["pos"].sel(subject="02").values[:, 2], one["z"].values)
    ga = xr.open_dataset(
        run / "results" / "group" / "task-demo_cond-visual_desc-sLORETA_grandavg.nc"
    )
    mean = ds["stc"].sel(condition="visual", inverse_method="sLORETA").mean("subject")
    np.testing.assert_allclose(mean.values, ga["stc"].values, rtol=1e-12)
    sub = open_source_estimates(run / "results", subjects=["01"], methods=["sLORETA"])
    assert sub.sizes["subject"] == 1 and sub.sizes["inverse_method"] == 1


def test_demo_localisation_error_within_15mm(run):
    """Peak of each sLORETA/eLORETA estimate within 15 mm of the simulated dipole."""
    truth = json.loads((run / "resources" / "demo_bids" / "code" / "demo_truth.json").read_text())
    errors = []
    for sub in ("01", "02"):
        for cond in ("auditory", "visual"):
            dip = truth["subjects"][sub]["dipoles"][cond]
            for method in ("sLORETA", "eLORETA"):
                ds = xr.open_dataset(_sub(run, sub, f"cond-{cond}_desc-{method}_stc.nc"))
                win = np.abs(ds["time"].values - dip["latency"]) <= 0.05
                amp = np.abs(ds["stc"].values[:, win])
                s = np.unravel_index(np.argmax(amp), amp.shape)[0]
                pos = np.array([ds["x"].values[s], ds["y"].values[s], ds["z"].values[s]])
                errors.append(np.linalg.norm(pos - dip["pos"]))
    assert max(errors) <= 0.015, np.round(np.array(errors) * 1000, 1)
    tsv = _tsv(run / "results" / "group" / "task-demo_localisation.tsv")
    assert len(tsv) == 8 and all(float(r["error_mm"]) <= 15 for r in tsv)


def _data_fingerprint(wd):
    out = {}
    for p in sorted((wd / "results").rglob("*.nc")):
        with xr.open_dataset(p) as ds:
            out[str(p.relative_to(wd))] = {
                k: np.asarray(v.values).copy() for k, v in ds.data_vars.items()
            }
    return out


def _mtimes(wd):
    return {p: p.stat().st_mtime_ns for p in (wd / "results").rglob("*.nc")}


def test_second_run_does_nothing(run):
    before = _mtimes(run)
    res = snakemake(run, "-n")
    assert "Nothing to be done" in res.stdout + res.stderr
    snakemake(run)
    assert _mtimes(run) == before


def test_snakemake_report_includes_qc(run, tmp_path):
    """`snakemake --report` bundles every subject's QC report, the cohort report and tables."""
    out = tmp_path / "report.html"
    snakemake(run, "--report", str(out))
    text = out.read_text(errors="replace")
    for sub in ("01", "02"):
        assert f"sub-{sub}_task-demo_report.html" in text
    for name in ("cohort_report.html", "qc.tsv", "task-demo_localisation.tsv"):
        assert name in text, name


def test_parameter_change_reruns_only_downstream(run, tmp_path):
    extra = tmp_path / "snr2.yaml"
    extra.write_text("inverse: {snr: 2.0}\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(run)]
    cmd += ["-n", "--quiet", "rules", "--configfile", str(TINY), str(extra)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=run)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = _rule_counts(res.stdout)
    assert counts["source_estimate"] == 4 and counts["resolution"] == 2
    upstream = {"demo_bids", "montage", "head_model", "source_space", "forward", "epochs"}
    upstream |= {"noise_cov", "evoked", "inverse_operator", "snr"}
    assert not upstream & set(counts), counts


def test_killed_run_resumes_to_same_files(run):
    before = _data_fingerprint(run)
    # remove sub-02's source estimates and the cohort outputs, then interrupt a rerun
    for p in (run / "results" / "sub-02").rglob("*_stc.nc"):
        p.unlink()
    shutil.rmtree(run / "results" / "group")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "--directory",
        str(run),
        "--cores",
        "1",
        "--configfile",
        str(TINY),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=run,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a hard kill takes the jobs too
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "results" / "sub-02").rglob("*_stc.nc")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # like `kill`
    try:
        proc.wait(timeout=30)
        hard_kill = False
    except subprocess.TimeoutExpired:
        # Snakemake's own shutdown occasionally hangs (seen once in ~10 runs on a loaded
        # machine). What a user, or a crashed node, does then: kill -9, which leaves
        # Snakemake's lock behind, so the documented `--unlock` comes first.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        hard_kill = True
        snakemake(run, "--unlock")
    n_done = len(list((run / "results" / "sub-02").rglob("*_stc.nc")))
    assert n_done < 4, "the run was not interrupted"
    if not hard_kill:  # a clean interruption removes its temporaries
        assert not list((run / "results").rglob(".*.tmp")), "partial files left behind"
    # nothing that looks complete is partial: every finished file opens
    for p in (run / "results").rglob("*.nc"):
        xr.open_dataset(p).close()
    snakemake(run, "--rerun-incomplete")
    after = _data_fingerprint(run)
    assert after.keys() == before.keys()
    for name, vars_ in before.items():
        for var, val in vars_.items():
            np.testing.assert_array_equal(after[name][var], val, err_msg=f"{name}:{var}")


def _readme_run_command():
    """The README's own command for running the workflow (Quick start, first command)."""
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") :]
    line = next(ln for ln in quick.splitlines() if "pip install -e . &&" in ln)
    command = line.split("&&")[-1].strip()
    assert command == ".venv/bin/snakemake --cores all", command
    return command.split()


def _kill_when(proc, results, n_files, timeout=300):
    """kill -9 the run's whole process group once ``n_files`` outputs exist."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(list(results.rglob("*.nc"))) >= n_files:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_kill_minus_nine_then_the_readme_command_resumes(run, tmp_path):
    """kill -9 at three points; `--unlock` and the README's command, verbatim, resume; every
    data variable equals the uninterrupted run's (a checkout whose config is the tiny demo)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for part in ("Snakefile", "workflow", "profiles", "config"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, checkout / part)
    shutil.copy(TINY, checkout / "config" / "config.yaml")
    (checkout / ".venv").symlink_to(sys.prefix)  # the venv the tests run in
    command = _readme_run_command()
    results = checkout / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def readme_command(*extra, check=True):
        res = subprocess.run(
            [*command, *extra], cwd=checkout, env=env, capture_output=True, text=True, timeout=600
        )
        assert not check or res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return res

    for n_files in (3, 12, 30):
        proc = subprocess.Popen(
            command,
            cwd=checkout,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _kill_when(proc, results, n_files)
        readme_command("--unlock")
    res = readme_command()
    assert "Using workflow specific profile" in res.stderr + res.stdout
    assert not list(results.rglob(".*.tmp")), "half-written files left behind"
    assert not (results / ".exgsrc.lock").exists()
    before, after = _data_fingerprint(run), _data_fingerprint(checkout)
    assert after.keys() == before.keys()
    for name, vars_ in before.items():
        for var, val in vars_.items():
            # `run` computed the resolution with 2 threads (--set-threads): BLAS's
            # summation order differs in the last bit; everything else is bit-identical
            rtol = 1e-12 if name.endswith("_resolution.nc") else 0
            np.testing.assert_allclose(
                after[name][var], val, rtol=rtol, atol=0, err_msg=f"{name}:{var}"
            )


def test_condition_absent_from_a_subject_is_a_warning(run):
    """sub-02 without 'visual' events: its other condition still gives results (warning)."""
    events = run / "resources" / "demo_bids" / "sub-02" / "eeg" / "sub-02_task-demo_events.tsv"
    original = events.read_text()
    lines = original.splitlines()
    events.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if "visual" not in ln]))
    try:
        snakemake(run)  # on_error: record (default)
        qc = {r["subject"]: r for r in _tsv(run / "results" / "group" / "qc.tsv")}
        assert qc["01"]["status"] == "ok"
        assert qc["02"]["status"] == "warning" and qc["02"]["failed_step"] == "stc"
        assert "visual" in qc["02"]["reason"] and qc["02"]["snr_peak_auditory"] != "n/a"
        snr = xr.open_dataset(_sub(run, "02", "snr.nc"))
        assert list(snr["condition"].values) == ["auditory"]
        from exgsrc.store import open_dataset

        ga = open_dataset(
            run / "results" / "group" / "task-demo_cond-visual_desc-sLORETA_grandavg.nc"
        )
        assert list(ga.attrs["subjects"]) == ["01"] and "02" in ga.attrs["failed_subjects"]
        summary = json.loads(
            (run / "results" / "sub-02" / "sub-02_task-demo_report.json").read_text()
        )
        assert summary["status"] == "warning", summary["status_reasons"]
        assert any("visual" in r for r in summary["status_reasons"])
    finally:
        events.write_text(original)


def test_failing_subject_is_recorded_and_cohort_proceeds(run):
    """Break sub-02's electrode file: its steps record failure; cohort outputs still come."""
    elec = (
        run / "resources" / "demo_bids" / "sub-02" / "eeg" / "sub-02_space-CapTrak_electrodes.tsv"
    )
    lines = elec.read_text().splitlines()
    elec.write_text(
        "\n".join([lines[0]] + [ln.split("\t")[0] + "\tn/a\tn/a\tn/a" for ln in lines[1:]]) + "\n"
    )
    res = snakemake(run)  # on_error: record (default) -> the run succeeds
    assert res.returncode == 0
    qc = {r["subject"]: r for r in _tsv(run / "results" / "group" / "qc.tsv")}
    assert qc["01"]["status"] == "ok"
    assert qc["02"]["status"] == "failed" and qc["02"]["failed_step"] == "montage"
    assert "electrodes" in qc["02"]["reason"] or "position" in qc["02"]["reason"]
    from exgsrc.store import open_dataset

    ga = open_dataset(
        run / "results" / "group" / "task-demo_cond-auditory_desc-sLORETA_grandavg.nc"
    )
    assert list(ga.attrs["subjects"]) == ["01"]
    assert "02" in ga.attrs["failed_subjects"]
    s1 = xr.open_dataset(_sub(run, "01", "cond-auditory_desc-sLORETA_stc.nc"))
    np.testing.assert_allclose(ga["stc"].values, s1["stc"].values)
    fwd2 = xr.open_dataset(_sub(run, "02", "fwd.nc"))
    assert fwd2.attrs["exgsrc_status"] == "failed"
    from exgsrc.store import open_source_estimates

    cohort = open_source_estimates(run / "results")
    status = cohort["status"].sel(subject="02").values
    assert all(str(v).startswith("failed") for v in status.ravel())
    assert np.isnan(cohort["stc"].sel(subject="02").values).all()
    assert np.isfinite(cohort["stc"].sel(subject="01").values).all()


# ---------------------------------------------------------------------------
# the failure policy without Snakemake (fast)


def _fake_snakemake(tmp_path, outputs, config=None):
    return SimpleNamespace(
        input=[],
        output=[str(tmp_path / o) for o in outputs],
        params=SimpleNamespace(),
        wildcards={"subject": "01"},
        config=config or {"on_error": "record"},
        rule="demo",
        log=[str(tmp_path / "x.log")],
    )


def test_run_step_records_failure(tmp_path):
    from exgsrc import store
    from exgsrc.steps._run import run_step

    sm = _fake_snakemake(tmp_path, ["a.nc", "b.tsv"])

    def boom(ctx):
        raise ValueError("channel 'Cz' has no position")

    run_step(sm, boom)
    assert store.is_failed(tmp_path / "a.nc")
    assert "Cz" in store.open_dataset(tmp_path / "a.nc").attrs["exgsrc_error"]
    assert (tmp_path / "b.tsv").read_text().startswith("# FAILED")
    assert "Traceback" in (tmp_path / "x.log").read_text()
    sm.config = {"on_error": "raise"}
    with pytest.raises(ValueError, match="Cz"):
        run_step(sm, boom)


def test_condition_label_roundtrip():
    from exgsrc.labels import condition_from_label, condition_label

    for text in ("auditory", "auditory/left", "Xylophone", "ça va", "<script>", "a b_c-1"):
        lab = condition_label(text)
        assert lab.isascii() and lab.isalnum()
        assert condition_from_label(lab) == text
    assert condition_label("auditory/left") == "auditoryX2Fleft"
    with pytest.raises(ValueError):
        condition_label("")


def test_cli(tmp_path, capsys):
    from exgsrc.cli import main

    assert main(["demo-bids", str(tmp_path / "bids"), "--subjects", "1", "--trials", "2"]) == 0
    assert (tmp_path / "bids" / "sub-01" / "eeg" / "sub-01_task-demo_eeg.edf").is_file()
    capsys.readouterr()
    assert main(["label", "a/b"]) == 0 and capsys.readouterr().out.strip() == "aX2Fb"
    assert main(["failed", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
