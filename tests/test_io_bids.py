"""BIDS discovery, reading and events on the shared real dataset (+ MNE parity) and bad input."""

from __future__ import annotations

import importlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from exgsrc.io import (
    BidsError,
    discover,
    read_events,
    read_montage,
    read_recording,
    select_conditions,
    validate_label,
)
from exgsrc.preprocessing import average, make_epochs


@pytest.fixture(scope="module")
def shared_rec(shared_bids_root):
    recs = discover(shared_bids_root)
    assert len(recs) == 1
    return recs[0]


@pytest.fixture(scope="module")
def mne_raw(shared_bids_root):
    mne_bids = importlib.import_module("mne_bids")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bp = mne_bids.BIDSPath(subject="01", task="squares", root=shared_bids_root, datatype="eeg")
        raw = mne_bids.read_raw_bids(bp, verbose="error")
    raw.load_data(verbose="error")
    return raw


def test_discover_shared(shared_rec, shared_bids_root):
    r = shared_rec
    assert (r.subject, r.task, r.session, r.run, r.format) == (
        "01",
        "squares",
        None,
        None,
        "EEGLAB",
    )
    assert r.channels_path.name == "sub-01_task-squares_channels.tsv"
    assert r.electrodes_path.name == "sub-01_space-CapTrak_electrodes.tsv"
    assert r.coordsystem_path.name == "sub-01_space-CapTrak_coordsystem.json"
    assert r.basename == "sub-01_task-squares"
    assert discover(shared_bids_root, subjects=["sub-01"], task="squares") == [r]
    with pytest.raises(BidsError, match="nothere"):
        discover(shared_bids_root, task="nothere")
    with pytest.raises(BidsError, match="02"):
        discover(shared_bids_root, subjects=["02"])


@pytest.mark.parametrize("bad", ["0-1", "a_b", "x y", "", "ü"])
def test_validate_label_rejects(bad):
    with pytest.raises(BidsError, match="alphanumeric"):
        validate_label(bad, "sub")


def test_validate_label_ok():
    assert validate_label("sub-A01", "sub") == "A01"


@pytest.mark.parity
def test_raw_matches_mne(shared_rec, mne_raw):
    raw = read_recording(shared_rec)
    assert raw.ch_names == tuple(mne_raw.ch_names)
    assert raw.sfreq == mne_raw.info["sfreq"]
    np.testing.assert_allclose(raw.data, mne_raw.get_data(), rtol=1e-12, atol=0)
    assert [t for t in raw.ch_types] == mne_raw.get_channel_types()
    assert raw.bads == tuple(mne_raw.info["bads"])


def _mne_epochs(mne_raw, tmin, tmax, reject, l_freq=None, h_freq=None):
    import mne

    raw = mne_raw.copy()
    if l_freq is not None or h_freq is not None:
        raw.filter(l_freq, h_freq, fir_design="firwin", verbose="error")
    events, event_id = mne.events_from_annotations(raw, verbose="error")
    ep = mne.Epochs(
        raw,
        events,
        event_id,
        tmin,
        tmax,
        baseline=(None, 0),
        reject=reject,
        preload=True,
        verbose="error",
    )
    return ep, events, event_id


@pytest.mark.parity
@pytest.mark.parametrize("reject", [None, {"eeg": 150e-6}])
def test_evoked_matches_mne(shared_rec, mne_raw, reject):
    raw = read_recording(shared_rec)
    ev = read_events(shared_rec)
    ep = make_epochs(raw, ev.sample, ev.trial_type, -0.2, 0.6, (None, 0.0), reject)
    mep, events, event_id = _mne_epochs(mne_raw, -0.2, 0.6, reject)
    # same event samples as MNE's annotations -> events
    np.testing.assert_array_equal(np.sort(ev.sample), np.sort(events[:, 0]))
    for cond in ("square", "rt"):
        ours = average(ep, cond)
        theirs = mep[cond].average(picks="all")
        assert ours.nave == theirs.nave
        idx = [theirs.ch_names.index(n) for n in ours.ch_names]
        np.testing.assert_allclose(ours.data, theirs.data[idx], rtol=1e-10, atol=1e-18)
        np.testing.assert_allclose(ours.times, theirs.times, atol=1e-12)
    # drop log: same epochs dropped, same channels named
    mne_log = [tuple(d) for d in mep.drop_log]
    order = np.argsort(ev.sample, kind="stable")
    ours_log = [ep.drop_log[i] for i in order]
    assert [bool(d) for d in ours_log] == [bool(d) for d in mne_log]
    assert [set(d) for d in ours_log] == [set(d) for d in mne_log]


def test_conditions_select_rename(shared_rec):
    ev = read_events(shared_rec)
    assert ev.conditions == ("square", "rt")
    assert (len(ev), ev.sfreq) == (154, 128.0)
    sq = select_conditions(ev, {"square": "stim"})
    assert set(sq.trial_type) == {"stim"} and len(sq) == ev.trial_type.count("square")
    ab = ev.select(["square", "missing"])
    assert ab.meta["absent"] == ["missing"]
    assert any("missing" in w and "events.tsv" in w for w in ab.meta["warnings"])


def test_montage_from_electrodes(shared_rec):
    raw = read_recording(shared_rec)
    eeg = [raw.ch_names[i] for i in raw.picks("eeg")]
    m = read_montage(shared_rec, eeg)
    assert m.ch_names == tuple(eeg) and m.coord_frame == "CapTrak"
    np.testing.assert_allclose(m.get_positions(["Cz"])[0], [0, 0, 0.095])
    m_all = read_montage(shared_rec, list(raw.ch_names))
    assert m_all.meta["missing"] == ["EOG1", "EOG2"]
    assert any("EOG1" in w for w in m_all.meta["warnings"])


# ---------------------------------------------------------------- bad input


@pytest.fixture
def bids_copy(tmp_path, shared_bids_root):
    """A writable copy of the small real dataset (in tmp, never in the project)."""
    dst = tmp_path / "bids"
    shutil.copytree(shared_bids_root, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _eeg(root: Path) -> Path:
    return root / "sub-01" / "eeg"


def test_malformed_channels_tsv(bids_copy):
    p = _eeg(bids_copy) / "sub-01_task-squares_channels.tsv"
    lines = p.read_text().splitlines()
    lines[3] = lines[3] + "\textra"
    p.write_text("\n".join(lines) + "\n")
    rec = discover(bids_copy)[0]
    with pytest.raises(BidsError, match="channels.tsv: line 4"):
        read_recording(rec)


def test_unknown_units(bids_copy):
    p = _eeg(bids_copy) / "sub-01_task-squares_channels.tsv"
    p.write_text(p.read_text().replace("FPz\tEEG\tµV", "FPz\tEEG\tfurlongs"))
    with pytest.raises(BidsError, match="unknown unit 'furlongs' for channel FPz"):
        read_recording(discover(bids_copy)[0])


def test_units_from_channels_tsv(bids_copy, shared_rec):
    p = _eeg(bids_copy) / "sub-01_task-squares_channels.tsv"
    p.write_text(p.read_text().replace("Cz\tEEG\tµV", "Cz\tEEG\tmV"))
    raw = read_recording(discover(bids_copy)[0])
    ref = read_recording(shared_rec)
    i = raw.ch_names.index("Cz")
    np.testing.assert_allclose(raw.data[i], ref.data[i] * 1e3)


def test_bad_status_and_channel_mismatch(bids_copy):
    p = _eeg(bids_copy) / "sub-01_task-squares_channels.tsv"
    txt = p.read_text()
    p.write_text(
        txt.replace(
            "T7\tEEG\tµV\t0.0\t64.0\tElectroEncephaloGram\t128.0\tgood",
            "T7\tEEG\tµV\t0.0\t64.0\tElectroEncephaloGram\t128.0\tbad",
        )
    )
    raw = read_recording(discover(bids_copy)[0])
    assert raw.bads == ("T7",)
    assert "T7" not in [raw.ch_names[i] for i in raw.picks("eeg")]
    p.write_text(txt.replace("O2\t", "O9\t"))
    with pytest.raises(BidsError, match=r"only in channels.tsv \['O9'\], only in data \['O2'\]"):
        read_recording(discover(bids_copy)[0])


def test_malformed_json_and_missing_data(bids_copy):
    j = _eeg(bids_copy) / "sub-01_task-squares_eeg.json"
    j.write_text("{not json")
    rec = discover(bids_copy)[0]
    with pytest.raises(BidsError, match="eeg.json: malformed JSON"):
        read_recording(rec)
    (_eeg(bids_copy) / "sub-01_task-squares_eeg.set").unlink()
    assert discover(bids_copy) == []


def test_electrodes_wrong_units(bids_copy):
    cs = _eeg(bids_copy) / "sub-01_space-CapTrak_coordsystem.json"
    el = _eeg(bids_copy) / "sub-01_space-CapTrak_electrodes.tsv"
    lines = el.read_text().splitlines()
    out = [lines[0]]
    for ln in lines[1:]:
        name, *xyz = ln.split("\t")
        out.append("\t".join([name] + [v if v == "n/a" else repr(float(v) * 1000) for v in xyz]))
    el.write_text("\n".join(out) + "\n")  # ~95 mm cloud, still declared as "m"
    rec = discover(bids_copy)[0]
    with pytest.raises(BidsError, match=r"electrodes.tsv.*radius 95 m.*look like 'mm'"):
        read_montage(rec)
    m = read_montage(rec, fix_units=True)
    assert any("rescaled as 'mm'" in w for w in m.meta["warnings"])
    np.testing.assert_allclose(np.linalg.norm(m.get_positions(["Cz"])), 0.095)
    d = json.loads(cs.read_text())
    d["EEGCoordinateUnits"] = "inch"
    cs.write_text(json.dumps(d))
    with pytest.raises(BidsError, match="coordsystem.json: unknown coordinate unit 'inch'"):
        read_montage(rec)


def test_eeglab_set_positions_without_electrodes_tsv(bids_copy, shared_rec, monkeypatch):
    """No electrodes.tsv: the .set file's chanlocs (EEGLAB frame) rather than a template."""
    for p in _eeg(bids_copy).glob("*_space-CapTrak_*"):
        p.unlink()
    rec = discover(bids_copy)[0]
    assert rec.electrodes_path is None
    raw = read_recording(rec)
    eeg = [raw.ch_names[i] for i in raw.picks("eeg")]
    m = read_montage(rec, eeg)
    ref = read_montage(shared_rec, eeg)  # the CapTrak electrodes.tsv MNE-BIDS wrote
    assert m.ch_names == ref.ch_names == tuple(eeg)
    np.testing.assert_array_equal(m.pos, ref.pos)
    assert m.coord_frame == "EEGLAB->RAS (axes)" and m.meta["coord_frame_original"] == "EEGLAB"
    set_path = rec.data_path
    assert m.meta["warnings"] == [
        f"{set_path}: no electrodes.tsv; using the positions of 30 channels stored in the .set "
        "file (EEGLAB frame x anterior, y left, z up -> RAS; unit 'm' judged from their scale)"
    ]
    assert not any("standard_1005" in w for w in m.meta["warnings"])
    assert read_montage(rec, list(raw.ch_names)).meta["missing"] == ["EOG1", "EOG2"]
    # positions no unit makes head-sized: the standard fallback, saying why
    import exgsrc.io.eeglab as eeglab_mod

    orig = eeglab_mod.read_eeglab_struct

    def far(path):
        st = orig(path)
        st["xyz"] = st["xyz"] * 1e4  # a 950 "m" head: no unit fits, nor a unit sphere
        return st

    monkeypatch.setattr(eeglab_mod, "read_eeglab_struct", far)
    m = read_montage(rec, eeg, fallback="standard_1020")
    assert m.coord_frame == "head"
    why = [w for w in m.meta["warnings"] if "chanlocs" in w]
    assert why == [
        f"{set_path}: chanlocs X/Y/Z span a sphere of radius 950 (no unit); no length unit "
        "makes that a head; positions of the .set file not used"
    ]
    assert any(
        "no electrodes.tsv; using positions of standard_1020" in w for w in m.meta["warnings"]
    )


@pytest.mark.parity
def test_eeglab_set_positions_match_mne(shared_rec):
    """The .set positions as MNE-Python reads them (EEGLAB axes, unit from the head size)."""
    from exgsrc.io.eeglab import read_eeglab_montage

    mne = importlib.import_module("mne")
    ours = read_eeglab_montage(shared_rec.data_path)
    theirs = mne.io.read_raw_eeglab(shared_rec.data_path, verbose="error").get_montage()
    pos = theirs.get_positions()["ch_pos"]
    np.testing.assert_array_equal(ours.pos, np.array([pos[n] for n in ours.ch_names]))


def test_participants_and_invalid_folder(bids_copy):
    (bids_copy / "sub-0_2").mkdir()
    (bids_copy / "participants.tsv").write_text("participant_id\tage\nsub-01\t3\nsub-03\t4\n")
    with pytest.warns(Warning) as rec_w:
        recs = discover(bids_copy)
    msgs = " ".join(str(w.message) for w in rec_w)
    assert "sub-03 listed but folder" in msgs and "invalid subject label '0_2'" in msgs
    assert [r.subject for r in recs] == ["01"]


def test_discover_cohort_at_once_equals_per_subject(tmp_path):
    """The workflow discovers a cohort in one call: same recordings and sidecars
    (inherited from the session, subject and root folders) as one call per subject."""
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    (root / "task-a_events.tsv").write_text("onset\tduration\ttrial_type\n1\t0\tgo\n")
    (root / "task-a_eeg.json").write_text("{}")
    for i, sub in enumerate(["01", "02", "10", "x1"]):
        sdir = root / f"sub-{sub}"
        sessions = ["1", "2"] if i % 2 else [None]
        for ses in sessions:
            d = (sdir / f"ses-{ses}" / "eeg") if ses else (sdir / "eeg")
            d.mkdir(parents=True)
            ents = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
            for task, run in [("a", "1"), ("a", "2"), ("b", None)]:
                base = f"{ents}_task-{task}" + (f"_run-{run}" if run else "")
                (d / f"{base}_eeg.edf").write_bytes(b"")
                (d / f"{base}_channels.tsv").write_text("name\ttype\tunits\n")
            if i == 2:  # a run-specific events file beats the root's
                (d / f"{ents}_task-a_run-2_events.tsv").write_text("onset\tduration\n")
        (sdir / f"sub-{sub}_space-CapTrak_electrodes.tsv").write_text("name\tx\ty\tz\n")
    subjects = ["01", "02", "10", "x1"]
    together = discover(root, subjects=subjects)
    one_by_one = [r for s in subjects for r in discover(root, subjects=[s])]
    assert together == one_by_one and len(together) == 3 + 6 + 3 + 6
    assert all(r.electrodes_path and r.eeg_json_path for r in together if r.task == "a")
    assert {r.events_path.name for r in together if r.task == "a"} == {
        "task-a_events.tsv",
        "sub-10_task-a_run-2_events.tsv",
    }


def test_events_missing_trial_type(bids_copy):
    p = _eeg(bids_copy) / "sub-01_task-squares_events.tsv"
    txt = p.read_text().splitlines()
    p.write_text("\n".join(ln.split("\t")[0] + "\t" + ln.split("\t")[1] for ln in txt) + "\n")
    with pytest.raises(BidsError, match="events.tsv: neither 'trial_type' nor 'value'"):
        read_events(discover(bids_copy)[0])


def test_duplicate_names_in_channels_tsv(bids_copy):
    p = _eeg(bids_copy) / "sub-01_task-squares_channels.tsv"
    p.write_text(p.read_text().replace("O2\t", "O1\t"))
    with pytest.raises(BidsError, match=r"channels.tsv: duplicate channel names \['O1'\]"):
        read_recording(discover(bids_copy)[0])


def test_bad_subject_does_not_block_others(bids_copy):
    """A second subject whose data file is truncated garbage fails alone, by name."""
    src = _eeg(bids_copy)
    dst = bids_copy / "sub-02" / "eeg"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name.replace("sub-01", "sub-02")).write_bytes(f.read_bytes())
    bad = dst / "sub-02_task-squares_eeg.set"
    bad.write_bytes(bad.read_bytes()[:5000])
    (bids_copy / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    recs = discover(bids_copy)
    assert [r.subject for r in recs] == ["01", "02"]
    results = {}
    for r in recs:
        try:
            results[r.subject] = read_recording(r).n_times
        except BidsError as err:
            results[r.subject] = str(err)
    assert results["01"] == 30503
    assert "sub-02_task-squares_eeg.set" in results["02"]


def test_events_fallback_to_data_file(bids_copy, shared_rec):
    (_eeg(bids_copy) / "sub-01_task-squares_events.tsv").unlink()
    rec = discover(bids_copy)[0]
    ev = read_events(rec)
    ref = read_events(shared_rec)
    assert ev.trial_type == ref.trial_type
    np.testing.assert_array_equal(ev.sample, ref.sample)
    assert "no events.tsv" in ev.meta["warnings"][0]


@pytest.mark.parity
@pytest.mark.parametrize("fmt", ["EDF", "BrainVision", "EEGLAB"])
def test_mne_bids_written_dataset(tmp_path, fmt):
    """Datasets written by MNE-BIDS in each format read as mne_bids.read_raw_bids reads them."""
    mne = importlib.import_module("mne")
    mne_bids = importlib.import_module("mne_bids")
    info = mne.create_info(["Fp1", "Fz", "Cz", "Pz", "O1", "EOG1"], 250.0, ["eeg"] * 5 + ["eog"])
    src = mne.io.RawArray(
        np.random.default_rng(0).standard_normal((6, 2500)) * 20e-6, info, verbose="error"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src.set_montage(mne.channels.make_standard_montage("standard_1020"), on_missing="ignore")
    src.set_annotations(mne.Annotations([1.0, 2.5, 7.2], [0, 0, 0], ["go", "stop", "go"]))
    src.info["bads"] = ["Pz"]
    src.info["line_freq"] = 50.0
    bp = mne_bids.BIDSPath(
        subject="01", session="a", task="t", run="1", root=tmp_path, datatype="eeg"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(src, bp, format=fmt, allow_preload=True, verbose="error")
        theirs = mne_bids.read_raw_bids(bp, verbose="error").load_data(verbose="error")
    (rec,) = discover(tmp_path, sessions=["a"], runs=["1"])
    assert rec.format == fmt and rec.basename == "sub-01_ses-a_task-t_run-1"
    raw = read_recording(rec)
    ref = theirs.get_data()
    np.testing.assert_allclose(raw.data, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    assert list(raw.ch_types) == theirs.get_channel_types()
    assert list(raw.bads) == theirs.info["bads"] == ["Pz"]
    assert not raw.meta["warnings"]
    ev = read_events(rec)
    events, event_id = mne.events_from_annotations(theirs, verbose="error")
    np.testing.assert_array_equal(ev.sample, events[:, 0])
    assert ev.trial_type == ("go", "stop", "go")
    mont = read_montage(rec, ["Fp1", "Fz", "Cz", "Pz", "O1"])
    pos = theirs.get_montage().get_positions()["ch_pos"]
    np.testing.assert_allclose(mont.pos, np.array([pos[n] for n in mont.ch_names]), atol=1e-12)
