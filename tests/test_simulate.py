"""Tests of the embedded demo cohort (exgsrc.simulate)."""

from __future__ import annotations

import csv
import importlib
import json

import numpy as np
import pytest

from exgsrc.io import read_electrodes, standard_montage
from exgsrc.scalp import fit_scalp_sphere
from exgsrc.simulate import (
    demo_subject_files,
    electrode_directions,
    make_demo_bids,
    simulate_subject,
    standard_channel_names,
)


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


# ---------------------------------------------------------------------------
# montage option: the 10-10 default unchanged, high-density EGI nets

_NETS = {"GSN-HydroCel-129": 129, "GSN-HydroCel-256": 256}


def test_default_montage_output_unchanged(tmp_path):
    """``montage="10-10 32"`` is the default, and the default's files are as before.

    The electrode lines were written by the simulator before the montage option
    existed (same seed); they are drawn first, so any change of the random
    stream shows here.
    """
    kw = dict(n_subjects=1, conditions=("x y",), seed=5, n_trials=3)
    make_demo_bids(tmp_path / "default", **kw)
    make_demo_bids(tmp_path / "explicit", montage="10-10 32", **kw)
    files = sorted(p.relative_to(tmp_path / "default") for p in (tmp_path / "default").rglob("*"))
    for rel in files:
        a, b = tmp_path / "default" / rel, tmp_path / "explicit" / rel
        if a.is_file():
            assert a.read_bytes() == b.read_bytes(), rel
    el = (tmp_path / "default/sub-01/eeg/sub-01_space-CapTrak_electrodes.tsv").read_text()
    assert el.splitlines()[:3] == [
        "name\tx\ty\tz",
        "Fp1\t-0.0265023\t0.083727\t0.0728461",
        "Fp2\t0.0211618\t0.0822618\t0.078245",
    ]
    assert (tmp_path / "default/participants.tsv").read_text().splitlines()[1] == "sub-01\t93.1"
    assert "montage" not in json.loads((tmp_path / "default/code/demo_truth.json").read_text())
    # "10-10 N" is n_channels=N
    make_demo_bids(tmp_path / "n64", n_channels=64, **kw)
    make_demo_bids(tmp_path / "m64", montage="10-10 64", **kw)
    edf = "sub-01/eeg/sub-01_task-demo_eeg.edf"
    assert (tmp_path / "n64" / edf).read_bytes() == (tmp_path / "m64" / edf).read_bytes()


def test_montage_arguments_named():
    with pytest.raises(ValueError, match="montage must be '10-10 N'"):
        make_demo_bids("/nonexistent-unused", montage="biosemi64")
    with pytest.raises(ValueError, match="n_channels=32 does not fit montage 'GSN-HydroCel-129'"):
        make_demo_bids("/nonexistent-unused", montage="GSN-HydroCel-129", n_channels=32)
    with pytest.raises(ValueError, match="n_channels=32 contradicts montage '10-10 64'"):
        make_demo_bids("/nonexistent-unused", montage="10-10 64", n_channels=32)


@pytest.fixture(scope="module", params=list(_NETS))
def hd_demo(request, tmp_path_factory):
    net = request.param
    root = tmp_path_factory.mktemp(net)
    truth = make_demo_bids(
        root, n_subjects=1, conditions=("auditory", "visual"), seed=1, n_trials=4, montage=net
    )
    return net, root, json.loads(truth.read_text())


def test_hd_demo_bids_files(hd_demo):
    mne = importlib.import_module("mne")
    net, root, truth = hd_demo
    n = _NETS[net]
    assert truth["montage"] == net
    files = demo_subject_files(root, "01")
    raw = mne.io.read_raw_edf(files["eeg"], verbose=False)
    assert len(raw.ch_names) == n + 1 and raw.ch_names[-1] == "VEOG"
    assert 2e-6 < np.median(raw.get_data()[:n].std(axis=1)) < 50e-6
    chans = _tsv(files["channels"])
    assert [c["name"] for c in chans] == raw.ch_names
    side = json.loads(files["sidecar"].read_text())
    assert side["EEGChannelCount"] == n
    # every electrode of the net, face and neck included, in a CapTrak frame
    mont = read_electrodes(files["electrodes"], files["coordsystem"])
    assert mont.ch_names == standard_montage(net).ch_names
    pos = mont.pos
    low = standard_montage(net).pos[:, 2] < -0.02  # template: 2 cm below the fiducial plane
    front = standard_montage(net).pos[:, 1] > 0
    assert (low & front).sum() >= 8 and (low & ~front).sum() >= 4  # cheeks/jaw, neck
    assert np.all(pos[low, 2] < 0)  # still there after scaling and jitter
    fid = mont.meta["fiducials"]
    np.testing.assert_allclose(fid["LPA"][1:], 0, atol=1e-8)
    np.testing.assert_allclose(fid["RPA"][1:], 0, atol=1e-8)
    np.testing.assert_allclose(fid["NAS"][[0, 2]], 0, atol=1e-8)
    # positions: the template scaled to the subject's head, jittered by a few mm
    t = truth["subjects"]["01"]
    template = standard_montage(net)
    scale = t["radius"] / fit_scalp_sphere(template).radius
    jitter = np.linalg.norm(pos - scale * template.pos, axis=1)
    assert np.median(jitter) < 0.006 and jitter.max() < 0.02
    np.testing.assert_allclose(fid["LPA"], scale * template.meta["fiducials"]["LPA"], rtol=1e-5)
    # the truth sphere is the one a face-free fit finds (a few mm off: jitter, offset)
    fit = fit_scalp_sphere(mont)
    assert abs(fit.radius - t["radius"]) < 0.003
    assert np.linalg.norm(np.subtract(fit.center, t["center"])) < 0.008
    # and the face/neck electrodes really are off that sphere
    off = np.abs(np.linalg.norm(pos - t["center"], axis=1) - t["radius"])
    assert off.max() > 0.012


@pytest.mark.parametrize("net", list(_NETS))
def test_hd_truth_is_the_sphere_at_the_radial_projection(net):
    """Noise-free subject: the data are MNE's sphere forward of the true dipole at each
    electrode's radial projection onto the true scalp sphere (the documented model)."""
    mne = importlib.import_module("mne")
    names = list(standard_montage(net).ch_names)
    sim = simulate_subject(
        np.random.default_rng(9),
        names,
        ["auditory"],
        n_trials=2,
        background_uv=0.0,
        sensor_noise_uv=0.0,
        n_bad=0,
        n_noisy_epochs=0,
        montage=net,
    )
    c, R = np.asarray(sim["center"]), sim["radius"]
    rel = sim["elec"] - c
    np.testing.assert_allclose(
        sim["elec_on_scalp"], c + R * rel / np.linalg.norm(rel, axis=1, keepdims=True), atol=1e-15
    )
    assert np.abs(np.linalg.norm(rel, axis=1) - R).max() > 0.01  # recorded off the sphere
    dip = sim["dipoles"]["auditory"]
    info = mne.create_info(names, sim["sfreq"], "eeg")
    dig = dict(zip(names, sim["elec_on_scalp"], strict=True))
    info.set_montage(mne.channels.make_dig_montage(dig, coord_frame="head"))
    from exgsrc.simulate import CONDUCTIVITIES, RELATIVE_RADII

    bem = mne.make_sphere_model(
        r0=c, head_radius=R, relative_radii=RELATIVE_RADII, sigmas=CONDUCTIVITIES, verbose=False
    )
    src = mne.setup_volume_source_space(
        pos=dict(rr=np.array([dip["pos"]]), nn=np.array([dip["ori"]])), verbose=False
    )
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=bem, verbose=False)
    g = fwd["sol"]["data"] @ np.asarray(dip["ori"])  # (n_ch,) V/(A m), float64
    data = sim["data"]
    peak = data[:, np.argmax(np.abs(data).max(axis=0))]
    scale = peak @ g / (g @ g)  # = moment x wave at the peak
    assert np.linalg.norm(peak - scale * g) / np.linalg.norm(peak) < 1e-10
    # the moment is the recorded one (evoked_uv peak), up to the wave's sign
    moment = dip["moment_nAm"] * 1e-9
    assert 0.5 < abs(scale) / moment <= 1.0 + 1e-9
