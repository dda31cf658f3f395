"""EDF/BDF reader: round trips through files written by edfio and MNE's exporter."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.io import BidsError, discover, read_events, read_raw, read_recording
from exgsrc.io.edf import read_edf

edfio = importlib.import_module("edfio")


def _write(path, data_uv, sfreq, labels, dims="uV", bdf=False, annotations=()):
    cls = edfio.BdfSignal if bdf else edfio.EdfSignal
    dr = (-(2**23), 2**23 - 1) if bdf else (-32768, 32767)
    if isinstance(dims, str):
        dims = [dims] * len(labels)
    sigs = [
        cls(
            data_uv[i],
            sfreq,
            label=labels[i],
            physical_dimension=dims[i],
            physical_range=(-500.0, 500.0),
            digital_range=dr,
        )
        for i in range(len(labels))
    ]
    f = (edfio.Bdf if bdf else edfio.Edf)(
        sigs, annotations=[edfio.EdfAnnotation(o, None, t) for o, t in annotations]
    )
    f.write(path)


@pytest.mark.parametrize("bdf", [False, True])
def test_edfio_roundtrip(tmp_path, bdf):
    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 100, (3, 1000))
    p = tmp_path / ("x.bdf" if bdf else "x.edf")
    _write(
        p,
        x,
        100.0,
        ["Fz", "Cz", "Pz"],
        dims=["uV", "mV", "uV"],
        bdf=bdf,
        annotations=[(1.5, "stim")],
    )
    raw = read_raw(p)
    lsb = 1000.0 / (2**24 if bdf else 2**16)  # quantisation step in file units
    assert raw.ch_names == ("Fz", "Cz", "Pz") and raw.sfreq == 100.0
    np.testing.assert_allclose(raw.data[0], x[0] * 1e-6, atol=lsb * 1e-6)
    np.testing.assert_allclose(raw.data[1], x[1] * 1e-3, atol=lsb * 1e-3)
    assert raw.meta["annotations"][0][0] == 1.5 and raw.meta["annotations"][0][2] == "stim"


@pytest.mark.parity
def test_matches_mne_reader_and_exporter(tmp_path):
    mne = importlib.import_module("mne")
    rng = np.random.default_rng(1)
    info = mne.create_info(["Fp1", "Fp2", "Cz", "Oz"], 250.0, "eeg")
    src = mne.io.RawArray(rng.standard_normal((4, 2500)) * 30e-6, info, verbose="error")
    p = tmp_path / "mne.edf"
    mne.export.export_raw(p, src, fmt="edf", verbose="error")
    ours = read_edf(p)
    theirs = mne.io.read_raw_edf(p, preload=True, verbose="error")
    assert ours.ch_names == tuple(theirs.ch_names)
    np.testing.assert_allclose(ours.data, theirs.get_data(), rtol=1e-12, atol=1e-15)
    # and close to what was exported (16-bit quantisation)
    assert np.abs(ours.data - src.get_data()).max() < 0.01 * np.abs(src.get_data()).max()


def test_truncated_edf_warns(tmp_path):
    p = tmp_path / "t.edf"
    _write(p, np.zeros((2, 1000)), 100.0, ["A", "B"])
    b = p.read_bytes()
    p.write_bytes(b[:-300])
    raw = read_edf(p)
    assert any("truncated" in w and "t.edf" in w for w in raw.meta["warnings"])


def test_corrupt_and_duplicates(tmp_path):
    p = tmp_path / "c.edf"
    p.write_bytes(b"0       garbage")
    with pytest.raises(BidsError, match="c.edf: cannot read EDF"):
        read_edf(p)
    _write(tmp_path / "d.edf", np.zeros((2, 100)), 100.0, ["A", "A"])
    with pytest.raises(BidsError, match="duplicate channel names"):
        read_edf(tmp_path / "d.edf")


def test_edf_bids_dataset(tmp_path):
    """A minimal BIDS tree with EDF data: types/bads from channels.tsv, events, units check."""
    root = tmp_path / "ds"
    eeg = root / "sub-A1" / "ses-1" / "eeg"
    eeg.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    x = np.random.default_rng(2).uniform(-50, 50, (3, 500))
    _write(eeg / "sub-A1_ses-1_task-rest_run-1_eeg.edf", x, 100.0, ["Fz", "Cz", "EOG"])
    (eeg / "sub-A1_ses-1_task-rest_run-1_channels.tsv").write_text(
        "name\ttype\tunits\tstatus\nFz\tEEG\tµV\tgood\nCz\tEEG\tµV\tbad\nEOG\tEOG\tµV\tgood\n"
    )
    (root / "task-rest_eeg.json").write_text('{"SamplingFrequency": 100, "TaskName": "rest"}')
    (eeg / "sub-A1_ses-1_task-rest_run-1_events.tsv").write_text(
        "onset\tduration\ttrial_type\n1.0\t0\tgo\n2.005\t0\tstop\n"
    )
    recs = discover(root, sessions=["1"], runs=["1"])
    assert len(recs) == 1 and recs[0].eeg_json_path == root / "task-rest_eeg.json"
    raw = read_recording(recs[0])
    assert raw.ch_types == ("eeg", "eeg", "eog") and raw.bads == ("Cz",)
    ev = read_events(recs[0])
    assert list(ev.sample) == [100, 200] and ev.trial_type == ("go", "stop")
    assert discover(root, sessions=["2"]) == []
    assert discover(root, runs=[1]) == recs == discover(root, runs="01")
    assert discover(root, runs=["2"]) == []


def test_edf_unit_from_channels_tsv(tmp_path):
    """An EDF without a voltage unit takes the unit from channels.tsv (warning); with no
    usable unit anywhere it is an error naming the channel."""
    root = tmp_path / "ds"
    eeg = root / "sub-1" / "eeg"
    eeg.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    x = np.random.default_rng(5).uniform(-50, 50, (2, 300))
    _write(eeg / "sub-1_task-x_eeg.edf", x, 100.0, ["Fz", "Cz"], dims=["", "uV"])
    ch = eeg / "sub-1_task-x_channels.tsv"
    ch.write_text("name\ttype\tunits\nFz\tEEG\tmV\nCz\tEEG\tµV\n")
    raw = read_recording(discover(root)[0])
    np.testing.assert_allclose(raw.data[0], x[0] * 1e-3, atol=1e-3 * 1000 / 2**16)
    assert any("Fz" in w and "'mV'" in w for w in raw.meta["warnings"])
    ch.write_text("name\ttype\tunits\nFz\tEEG\tmV\nCz\tEEG\tfurlong\n")
    raw = read_recording(discover(root)[0])
    assert any("unknown unit 'furlong' for Cz" in w for w in raw.meta["warnings"])
    np.testing.assert_allclose(raw.data[1], x[1] * 1e-6, atol=1e-6 * 1000 / 2**16)
    ch.write_text("name\ttype\tunits\nFz\tEEG\tn/a\nCz\tEEG\tµV\n")
    with pytest.raises(BidsError, match="unknown unit '' for EEG channel Fz"):
        read_recording(discover(root)[0])
