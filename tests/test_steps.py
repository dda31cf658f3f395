"""Workflow steps run directly (no Snakemake): the noise covariance options.

``covariance.method`` (every estimator of exgsrc.covariance through
step_noise_cov) and ``covariance.noise_task`` (the covariance of a separate noise
recording, checked against ``mne.compute_raw_covariance``).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from exgsrc import store
from exgsrc.simulate import _write_edf, make_demo_bids
from exgsrc.steps._run import run_step
from exgsrc.steps.headmodel import step_montage
from exgsrc.steps.preprocess import step_epochs, step_evoked, step_noise_cov

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = ROOT / "config" / "config.yaml"
SUB = "01"
NOISE_TASK = "rest"
FILTER = {"l_freq": 1.0, "h_freq": 40.0}


class _Named(list):
    """Minimal stand-in for Snakemake's named lists (list + attributes + items())."""

    def __init__(self, **kw):
        super().__init__(kw.values())
        self.__dict__.update(kw)

    def items(self):
        return self.__dict__.items()


DATA_CHECKS = {"nonfinite": "error", "suspect_channels": "mark_bad"}


def _run(step, inputs, output, params, on_error="raise"):
    sm = SimpleNamespace(
        input=_Named(**inputs),
        output=[str(output)],
        # as the rules pass them (config defaults for the keys a test does not set)
        params=SimpleNamespace(**{"selection": None, "data_checks": DATA_CHECKS, **params}),
        wildcards=_Named(subject=SUB),
        config={"on_error": on_error, "precision": "float64"},
        rule=step.__name__.removeprefix("step_"),
        log=[str(Path(output).with_suffix(".log"))],
    )
    run_step(sm, step)
    return Path(output)


def _tsv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _cov_cfg(**kw):
    cfg = {"method": "empirical", "tmin": None, "tmax": 0.0, "regularize": 0.0}
    cfg["noise_task"] = None
    cfg.update(kw)
    return cfg


# ---------------------------------------------------------------------------
# the schema (fast)


def _validator():
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


def test_schema_covariance_methods_match_the_library():
    from exgsrc.covariance import _ALIASES, _AUTO_METHODS, _METHODS

    schema = yaml.safe_load(SCHEMA.read_text())
    enum = schema["properties"]["covariance"]["properties"]["method"]["enum"]
    assert set(enum) == set(_METHODS) | set(_ALIASES) | {"auto"}
    assert set(_AUTO_METHODS) <= set(enum)
    v = _validator()
    for m in enum:
        assert not list(v.iter_errors({"covariance": {"method": m}})), m
    cfg = yaml.safe_load(CONFIG.read_text())
    assert not list(v.iter_errors(cfg))
    assert cfg["covariance"]["noise_task"] is None  # default: epoch baseline


def test_schema_rejects_unknown_covariance_method_naming_it():
    v = _validator()
    errs = list(v.iter_errors({"covariance": {"method": "ledoitwolf"}}))
    assert errs
    assert any("ledoitwolf" in e.message for e in errs)
    assert any(list(e.path) == ["covariance", "method"] for e in errs)
    assert list(v.iter_errors({"covariance": {"noise_task": "rest-1"}}))  # not a BIDS label
    assert not list(v.iter_errors({"covariance": {"noise_task": "rest"}}))


# ---------------------------------------------------------------------------
# a small BIDS dataset with a noise recording as a second task


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    """1 subject (2 conditions x 6 trials) + ``task-rest`` noise recording (20 s)."""
    root = tmp_path_factory.mktemp("bids")
    make_demo_bids(root, n_subjects=1, conditions=("auditory", "visual"), seed=5, n_trials=6)
    eeg = root / f"sub-{SUB}" / "eeg"
    main = f"sub-{SUB}_task-demo"
    noise = f"sub-{SUB}_task-{NOISE_TASK}"
    chans = _tsv(eeg / f"{main}_channels.tsv")
    names = [c["name"] for c in chans]
    sfreq = 250.0
    rng = np.random.default_rng(11)
    n = int(20 * sfreq)
    t = np.arange(n) / sfreq
    mix = rng.standard_normal((len(names), 6))
    data_uv = 4.0 * rng.standard_normal((len(names), n))  # sensor noise
    data_uv += mix @ np.cumsum(rng.standard_normal((6, n)), axis=1) * 0.3  # correlated drift
    data_uv += 8.0 * np.outer(rng.standard_normal(len(names)), np.sin(2 * np.pi * 10 * t))
    data_uv += 30.0  # DC offset: removed by the high-pass
    _write_edf(eeg / f"{noise}_eeg.edf", data_uv, names, sfreq, ["uV"] * len(names))
    shutil.copy(eeg / f"{main}_channels.tsv", eeg / f"{noise}_channels.tsv")
    side = json.loads((eeg / f"{main}_eeg.json").read_text())
    side.update(TaskName=NOISE_TASK, TaskDescription="resting noise", RecordingDuration=n / sfreq)
    (eeg / f"{noise}_eeg.json").write_text(json.dumps(side))
    return root


def _montage_params(root, fallback="standard_1005"):
    return {"bids_root": str(root), "task": "demo", "fallback": fallback}


@pytest.fixture(scope="module")
def steps(bids, tmp_path_factory):
    """montage.nc and epo.nc of the subject, made by the workflow's step functions."""
    out = tmp_path_factory.mktemp("out")
    mont = _run(step_montage, {}, out / "montage.nc", _montage_params(bids))
    epo = _run(
        step_epochs,
        {"montage": str(mont)},
        out / "epo.nc",
        {
            "bids_root": str(bids),
            "task": "demo",
            "conditions": ["auditory", "visual"],
            "filter": FILTER,
            "epochs": {"tmin": -0.2, "tmax": 0.5, "baseline": [None, 0.0]},
            "reject": {"eeg": None},
        },
    )
    return SimpleNamespace(root=bids, montage=mont, epochs=epo, out=out)


def _noise_cov(steps, name, **cfg):
    eeg = steps.root / f"sub-{SUB}" / "eeg"
    noise_files = sorted(str(p) for p in eeg.glob(f"*_task-{NOISE_TASK}_*"))
    return _run(
        step_noise_cov,
        {"montage": str(steps.montage), "noise": noise_files},
        steps.out / name,
        {
            "covariance": _cov_cfg(noise_task=NOISE_TASK, **cfg),
            "bids_root": str(steps.root),
            "filter": FILTER,
        },
    )


@pytest.mark.parametrize(
    "method",
    [
        "empirical",
        "shrunk",
        "shrinkage",
        "ledoit_wolf",
        "oas",
        "diagonal_fixed",
        "diagonal",
        "auto",
    ],
)
def test_every_schema_method_through_step_noise_cov(steps, method):
    out = _run(
        step_noise_cov,
        {"epochs": str(steps.epochs)},
        steps.out / f"cov-{method}.nc",
        {"covariance": _cov_cfg(method=method, regularize=0.1), "bids_root": str(steps.root)},
    )
    ds = store.open_dataset(out)
    assert ds.attrs["cov_method"] == method
    assert ds.attrs["cov_source"] == "epochs baseline"
    cov = store.load_cov(out)
    mont = store.open_dataset(steps.montage)
    used = [str(c) for c, u in zip(mont["channel"].values, mont["used"].values, strict=True) if u]
    assert list(cov.ch_names) == used
    c = cov.data
    np.testing.assert_allclose(c, c.T, atol=1e-12 * np.abs(c).max())
    w = np.linalg.eigvalsh(c)
    assert w[-1] > 0 and w[0] > -1e-10 * w[-1]
    # the average reference direction stays empty; the rest has full rank
    assert ds.attrs["rank_estimated"] == len(used) - 1


def test_noise_recording_cov_matches_mne(steps):
    """Covariance of the noise recording vs mne.compute_raw_covariance on the same data.

    exgsrc's FIR design is MNE's default (firwin, hamming, zero phase), so the
    filtered data agree to rounding and exact parity is expected.
    """
    import mne

    out = _noise_cov(steps, "cov-noise.nc")
    ds = store.open_dataset(out)
    assert ds.attrs["cov_source"] == "noise recording"
    assert ds.attrs["noise_task"] == NOISE_TASK
    assert Path(ds.attrs["noise_recordings"][0]).name == f"sub-{SUB}_task-{NOISE_TASK}_eeg.edf"
    assert ds.attrs["n_samples"] == 5000
    # provenance: the noise file's checksum is recorded
    inputs = {Path(r["path"]).name: r["sha256"] for r in ds.attrs["inputs"]}
    edf = steps.root / f"sub-{SUB}" / "eeg" / f"sub-{SUB}_task-{NOISE_TASK}_eeg.edf"
    assert inputs[edf.name] == store.file_sha256(edf)
    ours = store.load_cov(out)
    # same channels, same order as the epochs (forward/cov/inverse names match)
    epo = store.open_dataset(steps.epochs)
    assert list(ours.ch_names) == [str(c) for c in epo["channel"].values]

    chans = _tsv(edf.with_name(f"sub-{SUB}_task-{NOISE_TASK}_channels.tsv"))
    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    raw.set_channel_types({c["name"]: c["type"].lower() for c in chans if c["type"] != "EEG"})
    raw.info["bads"] = [c["name"] for c in chans if c["status"] == "bad"]
    raw.filter(FILTER["l_freq"], FILTER["h_freq"], fir_design="firwin", verbose="error")
    raw.set_eeg_reference("average", projection=True, verbose="error")
    raw.apply_proj(verbose="error")
    raw.pick(list(ours.ch_names))
    mcov = mne.compute_raw_covariance(raw, tstep=None, method="empirical", verbose="error")
    assert mcov.ch_names == list(ours.ch_names)
    ref = mcov.data
    err = np.abs(ours.data - ref).max() / np.abs(ref).max()
    print(f"noise-recording covariance vs MNE: max rel error {err:.2e}")
    np.testing.assert_allclose(ours.data, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    assert ours.nfree == mcov["nfree"]


def test_noise_recording_bad_channel_kept_with_warning(steps, tmp_path):
    """A montage channel marked bad only in the noise recording is kept (names must match)."""
    root = tmp_path / "bids"
    shutil.copytree(steps.root, root)
    tsv = root / f"sub-{SUB}" / "eeg" / f"sub-{SUB}_task-{NOISE_TASK}_channels.tsv"
    rows = _tsv(tsv)
    good = next(r for r in rows if r["type"] == "EEG" and r["status"] == "good")
    good["status"] = "bad"
    with open(tsv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    out = _run(
        step_noise_cov,
        {"montage": str(steps.montage), "noise": [str(tsv)]},
        tmp_path / "cov.nc",
        {
            "covariance": _cov_cfg(noise_task=NOISE_TASK),
            "bids_root": str(root),
            "filter": FILTER,
        },
    )
    ds = store.open_dataset(out)
    assert good["name"] in [str(c) for c in ds["channel"].values]
    assert any(good["name"] in w and "marked bad" in w for w in ds.attrs["warnings"])


def test_missing_noise_recording_is_the_subjects_failure(steps):
    params = {
        "covariance": _cov_cfg(noise_task="empty"),
        "bids_root": str(steps.root),
        "filter": FILTER,
    }
    inputs = {"montage": str(steps.montage), "noise": []}
    out = _run(step_noise_cov, inputs, steps.out / "cov-missing.nc", params, on_error="record")
    assert store.is_failed(out)
    msg = store.open_dataset(out).attrs["exgsrc_error"]
    assert "sub-01" in msg and "'empty'" in msg and "noise_task" in msg
    with pytest.raises(ValueError, match="no noise recording of sub-01 for task 'empty'"):
        _run(step_noise_cov, inputs, steps.out / "cov-missing2.nc", params)


def _evoked_job(steps, folder, conditions, on_error="record", **wildcards):
    """step_evoked as the workflow runs it: one job, one output per condition."""
    outs = [str(folder / f"cond-{lab}_ave.nc") for lab in conditions]
    sm = SimpleNamespace(
        input=_Named(epochs=str(steps.epochs)),
        output=outs,
        params=SimpleNamespace(conditions=dict(conditions)),
        wildcards=_Named(subject=SUB, **wildcards),
        config={"on_error": on_error, "precision": "float64"},
        rule="evoked",
        log=[str(folder / "evoked.log")],
    )
    run_step(sm, step_evoked)
    return [Path(o) for o in outs]


def test_one_job_of_several_evokeds_equals_one_job_each(steps, tmp_path):
    """All conditions in one job: each file as its own job wrote it (data and
    attributes, wildcards included); a condition without epochs fails alone."""
    conds = {"auditory": "auditory", "visual": "visual", "absent": "absent"}
    aud, vis, absent = _evoked_job(steps, tmp_path, conds)
    for cond, path in (("auditory", aud), ("visual", vis)):
        alone = _run(
            step_evoked,
            {"epochs": str(steps.epochs)},
            tmp_path / "alone" / f"cond-{cond}_ave.nc",
            {"condition": cond},
            on_error="record",  # the same config as the job's
        )
        one = store.open_dataset(alone)
        both = store.open_dataset(path)
        assert not store.is_failed(path)
        assert both.attrs["wildcards"] == {"subject": SUB, "cond": cond}
        np.testing.assert_array_equal(both["evoked"].values, one["evoked"].values)
        skip = {"created", "wildcards"}
        assert {k: v for k, v in both.attrs.items() if k not in skip} == {
            k: v for k, v in one.attrs.items() if k not in skip
        }
    assert store.is_failed(absent)
    failed = store.open_dataset(absent)
    assert "absent" in failed.attrs["exgsrc_error"]
    assert failed.attrs["wildcards"] == {"subject": SUB, "cond": "absent"}
    assert failed.attrs["exgsrc_rule"] == "evoked"
    # the job's failure note names the failed output only (``exgsrc retry`` removes it)
    note = json.loads((tmp_path / "evoked.log.failed.json").read_text())
    assert note["outputs"] == [str(absent.resolve())] and "absent" in note["error"]
    log = (tmp_path / "evoked.log").read_text()
    assert "1 of 3 outputs failed" in log
    # a rerun where every part succeeds forgets the note
    _evoked_job(steps, tmp_path, {"auditory": "auditory"})
    assert not (tmp_path / "evoked.log.failed.json").exists()
    with pytest.raises(ValueError, match="absent"):
        _evoked_job(steps, tmp_path / "raise", conds, on_error="raise")


@pytest.mark.workflow
def test_dry_run_noise_cov_takes_the_noise_recording(steps, tmp_path):
    cfg = tmp_path / "noise.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "bids_root": str(steps.root),
                "output": str(tmp_path / "results"),
                "covariance": {"noise_task": NOISE_TASK},
                "resolution": {"enabled": False},
            }
        )
    )
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory"]
    cmd += [str(tmp_path), "--configfile", str(cfg), "-n", "--cores", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    text = res.stdout + res.stderr
    block = text[text.index("rule noise_cov:") :].splitlines()
    end = next(i for i, ln in enumerate(block[1:], 1) if ln.strip().startswith("jobid:"))
    block = "\n".join(block[:end])  # input/output/log lines of the noise_cov job
    edf = f"sub-{SUB}_task-{NOISE_TASK}_eeg.edf"
    assert edf in block and "montage.nc" in block and "epo.nc" not in block
    # the main task stays the only one found (task: null) although two tasks exist
    assert "task-demo_cov.nc" in block


@pytest.mark.parity
def test_prepare_continuous_filter_resample_reference_matches_mne(bids):
    """filter -> resample -> average reference equals MNE's raw.filter/resample/reference."""
    import mne

    from exgsrc.io.bids import discover, read_recording
    from exgsrc.steps.preprocess import prepare_continuous

    rec = discover(bids, subjects=[SUB], task=NOISE_TASK)[0]
    raw = read_recording(rec)
    eeg = [n for n, t in zip(raw.ch_names, raw.ch_types, strict=True) if t == "eeg"]
    ours = prepare_continuous(raw.pick_channels(eeg), {**FILTER, "resample": 100.0})
    assert ours.sfreq == 100.0 and ours.data.shape == (len(eeg), 2000)

    m = mne.io.read_raw_edf(rec.data_path, preload=True, verbose="error").pick(eeg)
    m.info["bads"] = [n for n in raw.bads if n in eeg]  # channels.tsv status, as ours
    m.filter(FILTER["l_freq"], FILTER["h_freq"], verbose="error")
    m.resample(100.0, verbose="error")
    m.set_eeg_reference("average", verbose="error")
    ref = m.get_data()
    err = np.abs(ours.data - ref).max() / np.abs(ref).max()
    print(f"filter+resample+reference vs MNE: max rel error {err:.2e}")
    np.testing.assert_allclose(ours.data, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    # without resampling the rate is kept
    same = prepare_continuous(raw.pick_channels(eeg), {**FILTER, "resample": None})
    assert same.sfreq == raw.sfreq


def test_montage_fallback_when_no_electrodes_file(bids, tmp_path):
    """No electrodes.tsv: standard positions with a recorded warning, or an error naming the file."""
    root = tmp_path / "bids"
    shutil.copytree(bids, root)
    for p in (root / f"sub-{SUB}" / "eeg").glob("*_electrodes.tsv"):
        p.unlink()
    out = _run(step_montage, {}, tmp_path / "m.nc", _montage_params(root, "standard_1020"))
    ds = store.open_dataset(out)
    assert int(ds["used"].sum()) >= 19
    assert any("no electrodes.tsv" in w and "standard_1020" in w for w in ds.attrs["warnings"])
    # positions lie on the standard sphere (95 mm)
    pos = ds["pos"].values[ds["used"].values.astype(bool)]
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 0.095, rtol=1e-9)
    failed = _run(
        step_montage, {}, tmp_path / "m2.nc", _montage_params(root, None), on_error="record"
    )
    assert store.is_failed(failed)
    assert "no electrodes.tsv" in store.open_dataset(failed).attrs["exgsrc_error"]


@pytest.fixture(scope="module")
def sessions_bids(bids, tmp_path_factory):
    """sub-01 with two sessions of task-demo; session 2 has runs 1 and 2."""
    root = tmp_path_factory.mktemp("sessions") / "bids"
    shutil.copytree(bids, root)
    flat = root / f"sub-{SUB}" / "eeg"
    files = [p for p in flat.iterdir() if "task-demo" in p.name or "electrodes" in p.name]
    files += [p for p in flat.iterdir() if "coordsystem" in p.name]
    layout = {"1": [None], "2": ["1", "2"]}
    for ses, runs in layout.items():
        d = root / f"sub-{SUB}" / f"ses-{ses}" / "eeg"
        d.mkdir(parents=True)
        for p in files:
            for run in runs if "task-demo" in p.name else [None]:
                name = p.name.replace(f"sub-{SUB}_", f"sub-{SUB}_ses-{ses}_")
                if run is not None:
                    name = name.replace("_task-demo_", f"_task-demo_run-{run}_")
                shutil.copy(p, d / name)
    shutil.rmtree(flat)
    return root


def _dry_run(tmp_path, root, **cfg):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        yaml.safe_dump(
            {"bids_root": str(root), "output": str(tmp_path / "results"), "task": "demo", **cfg}
        )
    )
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory"]
    cmd += [str(tmp_path), "--configfile", str(path), "-n", "--cores", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _rule_block(text, rule):
    block = text[text.index(f"rule {rule}:") :].splitlines()
    end = next(i for i, ln in enumerate(block[1:], 1) if ln.strip().startswith("jobid:"))
    return "\n".join(block[:end])


def test_session_and_run_selection(sessions_bids, tmp_path):
    from exgsrc.steps.preprocess import recordings as _recordings

    # two sessions and no choice: stop, naming them
    res = _dry_run(tmp_path, sessions_bids)
    assert res.returncode != 0
    assert "sessions ['1', '2']" in res.stdout + res.stderr
    # session 2 (an integer in YAML), both runs: the epochs read exactly those files
    res = _dry_run(tmp_path, sessions_bids, session=2)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    block = _rule_block(res.stdout + res.stderr, "epochs")
    assert "ses-2_task-demo_run-1_eeg.edf" in block and "run-2_eeg.edf" in block
    assert "ses-1" not in block
    # runs: [2] keeps run 2 only
    res = _dry_run(tmp_path, sessions_bids, session="2", runs=[2])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    block = _rule_block(res.stdout + res.stderr, "epochs")
    assert "run-2_eeg.edf" in block and "run-1_eeg.edf" not in block
    # a session the subject does not have: an error naming the selection
    res = _dry_run(tmp_path, sessions_bids, session="3")
    assert res.returncode != 0 and "session '3'" in res.stdout + res.stderr
    # the steps read the same recordings the rules list
    recs = _recordings(sessions_bids, SUB, "demo", {"session": "2", "runs": ["2"]})
    assert [(r.session, r.run) for r in recs] == [("2", "2")]
    recs = _recordings(sessions_bids, SUB, "demo", {"session": "1", "runs": None})
    assert [(r.session, r.run) for r in recs] == [("1", None)]


# ---------------------------------------------------------------------------
# coordinate frames: the same head described in EEGLAB's or CTF's frame


def _als(p):
    """RAS -> ALS (EEGLAB, CTF): x' = y, y' = -x, z' = z."""
    return [p[1], -p[0], p[2]]


def _reframe(src, dst, frame, to_frame, landmarks=True):
    """A copy of ``src`` whose electrodes.tsv (and landmarks) are ``to_frame`` of the original."""
    shutil.copytree(src, dst)
    eeg = dst / f"sub-{SUB}" / "eeg"
    (el,) = eeg.glob("*_electrodes.tsv")
    (cs,) = eeg.glob("*_coordsystem.json")
    rows = ["name\tx\ty\tz"]
    for r in _tsv(el):
        xyz = [r["x"], r["y"], r["z"]]
        if "n/a" not in xyz:
            xyz = [repr(float(v)) for v in to_frame(np.array([float(v) for v in xyz]))]
        rows.append("\t".join([r["name"], *xyz]))
    side = json.loads(cs.read_text())
    lm = side.pop("AnatomicalLandmarkCoordinates")
    side.update(EEGCoordinateSystem=frame, AnatomicalLandmarkCoordinateSystem=frame)
    if landmarks:
        side["AnatomicalLandmarkCoordinates"] = {
            k: [float(v) for v in to_frame(np.asarray(p, float))] for k, p in lm.items()
        }
    el.unlink()
    cs.unlink()
    (eeg / el.name.replace("space-CapTrak", f"space-{frame}")).write_text("\n".join(rows) + "\n")
    (eeg / cs.name.replace("space-CapTrak", f"space-{frame}")).write_text(json.dumps(side))
    return dst


def _head_steps(root, out):
    """montage -> head model -> source space, as the workflow runs them: (montage, src)."""
    from exgsrc.steps.headmodel import step_head_model, step_source_space

    cfg = yaml.safe_load(CONFIG.read_text())
    out.mkdir(parents=True, exist_ok=True)
    mont = _run(step_montage, {}, out / "montage.nc", _montage_params(root))
    hm = _run(
        step_head_model, {"montage": str(mont)}, out / "hm.nc", {"head_model": cfg["head_model"]}
    )
    src = _run(
        step_source_space,
        {"head_model": str(hm)},
        out / "src.nc",
        {"source_space": cfg["source_space"]},
    )
    return store.open_dataset(mont), store.open_dataset(src)


def _same_head(a, b, atol=1e-9):
    (ma, sa), (mb, sb) = a, b
    assert list(ma["channel"].values) == list(mb["channel"].values)
    np.testing.assert_array_equal(ma["used"].values, mb["used"].values)
    np.testing.assert_allclose(ma["pos"].values, mb["pos"].values, rtol=0, atol=atol)
    for c in "xyz":
        np.testing.assert_allclose(sa[c].values, sb[c].values, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def captrak_runs(bids, tmp_path_factory):
    """The demo subject in CapTrak as simulated, and re-expressed in its own landmark frame."""
    from exgsrc.io.coords import apply_transform, landmark_transform

    tmp = tmp_path_factory.mktemp("frames")
    side = json.loads(next((bids / f"sub-{SUB}" / "eeg").glob("*_coordsystem.json")).read_text())
    lm = side["AnatomicalLandmarkCoordinates"]
    head = landmark_transform(lm["NAS"], lm["LPA"], lm["RPA"])
    fid_root = _reframe(bids, tmp / "fid", "CapTrak", lambda p: apply_transform(head, p))
    return {
        "demo": _head_steps(bids, tmp / "demo_out"),
        "fid": _head_steps(fid_root, tmp / "fid_out"),
        "fid_root": fid_root,
    }


def test_captrak_positions_are_kept_bit_for_bit(bids, captrak_runs):
    from exgsrc.io.coords import RAS_HEAD

    mont, src = captrak_runs["demo"]
    (el,) = (bids / f"sub-{SUB}" / "eeg").glob("*_electrodes.tsv")
    exact = {r["name"]: [float(r[c]) for c in "xyz"] for r in _tsv(el) if r["x"] != "n/a"}
    used = mont["used"].values.astype(bool)
    names = mont["channel"].values[used]
    np.testing.assert_array_equal(mont["pos"].values[used], [exact[n] for n in names])
    assert mont.attrs["coord_frame"] == mont.attrs["coord_frame_original"] == "CapTrak"
    np.testing.assert_array_equal(mont.attrs["coord_transform"], np.eye(4))
    assert src.attrs["coord_frame"] == RAS_HEAD


@pytest.mark.parametrize("frame", ["EEGLAB", "CTF"])
def test_als_frame_gives_the_same_sources_as_captrak(captrak_runs, bids, tmp_path, frame):
    """Positions in an ALS frame, no landmarks: converted by the axes, the same head."""
    root = _reframe(bids, tmp_path / "bids", frame, _als, landmarks=False)
    got = _head_steps(root, tmp_path / "out")
    _same_head(got, captrak_runs["demo"])
    mont = got[0]
    assert mont.attrs["coord_frame"] == f"{frame}->RAS (axes)"
    assert mont.attrs["coord_frame_original"] == frame
    np.testing.assert_array_equal(
        np.asarray(mont.attrs["coord_transform"])[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    )


def _tilted_als(p):
    """An ALS digitiser frame 10 degrees and a few mm off CTF's own definition."""
    a = np.deg2rad(10.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return rot @ _als(p) + [0.004, -0.003, 0.012]


@pytest.mark.parametrize("frame, to_frame", [("EEGLAB", _als), ("CTF", _tilted_als)])
def test_landmarks_give_the_same_sources_as_captrak(captrak_runs, tmp_path, frame, to_frame):
    """Positions and NAS/LPA/RPA in another frame: the landmarks' head frame, as in CapTrak."""
    root = _reframe(captrak_runs["fid_root"], tmp_path / "bids", frame, to_frame)
    got = _head_steps(root, tmp_path / "out")
    ref = captrak_runs["fid"]
    _same_head(got, ref)
    mont = got[0]
    assert mont.attrs["coord_frame"] == f"{frame}->RAS (landmarks)"
    for k in ("NAS", "LPA", "RPA"):
        np.testing.assert_allclose(
            mont.attrs["fiducials"][k], ref[0].attrs["fiducials"][k], rtol=0, atol=1e-12
        )


def test_qc_table_warnings_of_every_step_once():
    """The QC table's warnings column holds every loaded step's warnings, each once
    (the montage and the epochs steps both carry the reader's warnings)."""
    import xarray as xr

    from exgsrc.steps.cohort import _qc_figures

    reader = "coordsystem.json missing: positions assumed in CapTrak"
    montage = xr.Dataset(
        {"used": ("channel", [True, True]), "status": ("channel", ["good", "bad"])},
        coords={"channel": ["Fz", "Cz"]},
        attrs={"warnings": [reader]},
    )
    epochs = xr.Dataset(attrs={"warnings": [reader, "12 events outside the recording"]})
    row: dict = {}
    warns = _qc_figures(row, {"montage": montage, "epochs": epochs}, {}, [])
    assert warns == [reader, "12 events outside the recording"]
    assert row["bads"] == "Cz" and row["n_eeg_used"] == 2
