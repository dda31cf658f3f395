"""Tests of the embedded demo cohort (exgsrc.simulate)."""

from __future__ import annotations

import csv
import importlib
import json

import numpy as np
import pytest

from exgsrc.simulate import electrode_directions, make_demo_bids, standard_channel_names


def _tsv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    truth = make_demo_bids(
        root, n_subjects=2, conditions=("auditory", "visual"), seed=3, n_trials=30
    )
    return root, json.loads(truth.read_text())


def test_electrode_layout_landmarks():
    d = dict(
        zip(
            standard_channel_names(64),
            electrode_directions(standard_channel_names(64)),
            strict=True,
        )
    )
    np.testing.assert_allclose(d["Cz"], [0, 0, 1], atol=1e-12)
    assert d["T7"][0] < -0.9 and d["T8"][0] > 0.9  # left / right
    assert d["Fpz"][1] > 0.9 and d["Oz"][1] < -0.9  # front / back
    assert d["F3"][0] < 0 < d["F4"][0]
    assert len(set(map(tuple, np.round(list(d.values()), 6)))) == 64  # all distinct


def test_bids_tree_readable_by_mne(demo):
    mne = importlib.import_module("mne")
    root, truth = demo
    for sub in ("01", "02"):
        eeg = root / f"sub-{sub}" / "eeg"
        raw = mne.io.read_raw_edf(eeg / f"sub-{sub}_task-demo_eeg.edf", verbose=False)
        assert raw.info["sfreq"] == 250.0
        assert len(raw.ch_names) == 33
        data = raw.get_data()  # volts
        assert 2e-6 < np.median(data.std(axis=1)) < 50e-6
        chans = _tsv(eeg / f"sub-{sub}_task-demo_channels.tsv")
        assert [c["name"] for c in chans] == raw.ch_names
        bads = [c["name"] for c in chans if c["status"] == "bad"]
        assert bads == truth["subjects"][sub]["bads"] and len(bads) >= 1
        assert {c["type"] for c in chans} == {"EEG", "EOG"}
        events = _tsv(eeg / f"sub-{sub}_task-demo_events.tsv")
        assert len(events) == 60
        assert {e["trial_type"] for e in events} == {"auditory", "visual"}
        for e in events:
            assert int(e["sample"]) == round(float(e["onset"]) * 250)
        elec = _tsv(eeg / f"sub-{sub}_space-CapTrak_electrodes.tsv")
        pos = np.array([[float(e[k]) for k in "xyz"] for e in elec])
        r = np.linalg.norm(pos - truth["subjects"][sub]["center"], axis=1)
        assert np.all(np.abs(r - truth["subjects"][sub]["radius"]) < 0.01)
        coord = json.loads((eeg / f"sub-{sub}_space-CapTrak_coordsystem.json").read_text())
        assert coord["EEGCoordinateUnits"] == "m"
    assert len(_tsv(root / "participants.tsv")) == 2
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"]


def test_evoked_topography_matches_mne_sphere_forward(demo):
    """The simulated evoked field equals MNE's sphere-model field of the true dipole."""
    mne = importlib.import_module("mne")
    root, truth = demo
    sub = "01"
    eeg = root / f"sub-{sub}" / "eeg"
    raw = mne.io.read_raw_edf(eeg / f"sub-{sub}_task-demo_eeg.edf", preload=True, verbose=False)
    chans = _tsv(eeg / f"sub-{sub}_task-demo_channels.tsv")
    elec = {
        e["name"]: [float(e[k]) for k in "xyz"]
        for e in _tsv(eeg / f"sub-{sub}_space-CapTrak_electrodes.tsv")
    }
    good = [c["name"] for c in chans if c["type"] == "EEG" and c["status"] == "good"]
    raw.pick(good).set_channel_types({n: "eeg" for n in good})
    raw.set_montage(mne.channels.make_dig_montage(elec, coord_frame="head"))
    raw.filter(1.0, 40.0, verbose=False)
    events = _tsv(eeg / f"sub-{sub}_task-demo_events.tsv")
    ev = np.array([[int(e["sample"]), 0, 1] for e in events if e["trial_type"] == "auditory"])
    epochs = mne.Epochs(
        raw, ev, tmin=-0.2, tmax=0.5, baseline=(None, 0), reject=dict(eeg=150e-6), verbose=False
    )
    evoked = epochs.average().set_eeg_reference("average", verbose=False)
    dip = truth["subjects"][sub]["dipoles"]["auditory"]
    s = truth["subjects"][sub]
    bem = mne.make_sphere_model(
        r0=s["center"],
        head_radius=s["radius"],
        relative_radii=truth["relative_radii"],
        sigmas=truth["conductivities"],
        verbose=False,
    )
    fwd_dip = mne.Dipole(
        np.array([0.0]),
        np.array([dip["pos"]]),
        np.array([1e-8]),
        np.array([dip["ori"]]),
        np.array([1.0]),
    )
    fwd, _ = mne.make_forward_dipole(fwd_dip, bem, evoked.info, trans=None, verbose=False)
    topo_mne = fwd["sol"]["data"][:, 0]
    topo_mne = topo_mne - topo_mne.mean()
    t_peak = evoked.time_as_index(dip["latency"])[0]
    topo = evoked.data[:, t_peak]
    corr = np.corrcoef(topo, topo_mne)[0, 1]
    assert abs(corr) > 0.9, corr


def test_same_seed_same_files(tmp_path):
    a = make_demo_bids(tmp_path / "a", n_subjects=1, conditions=("x y",), seed=5, n_trials=3)
    b = make_demo_bids(tmp_path / "b", n_subjects=1, conditions=("x y",), seed=5, n_trials=3)
    fa = (tmp_path / "a/sub-01/eeg/sub-01_task-demo_eeg.edf").read_bytes()
    fb = (tmp_path / "b/sub-01/eeg/sub-01_task-demo_eeg.edf").read_bytes()
    assert fa == fb
    assert json.loads(a.read_text()) == json.loads(b.read_text())


def test_bad_arguments_named():
    with pytest.raises(ValueError, match="n_subjects"):
        make_demo_bids("/nonexistent-unused", n_subjects=0)
    with pytest.raises(ValueError, match="n_channels"):
        standard_channel_names(100)
