"""EEGLAB reader: eeglabio (v5 and v7.3) and MNE-exported files, .fdt data, bad input."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.io import BidsError, read_raw
from exgsrc.io.eeglab import read_eeglab

eeglabio = importlib.import_module("eeglabio.raw")
mne = importlib.import_module("mne")

NAMES = ["Fz", "C4", "Cz", "C3", "EOG"]


def _write(path, fmt="v5"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 600)) * 20e-6
    ann = (np.array(["stim", "resp"]), np.array([0.5, 1.2]), np.array([0.0, 0.0]))
    locs = np.array([[0, 0.09, 0], [0.09, 0, 0], [0, 0, 0.09], [-0.09, 0, 0], [np.nan] * 3])
    eeglabio.export_set(
        str(path),
        x,
        250.0,
        NAMES,
        ch_locs=locs,
        annotations=ann,
        fmt=fmt,
        ch_types=["EEG"] * 4 + ["EOG"],
    )
    return x


@pytest.mark.parity
@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_eeglabio_roundtrip_and_mne(tmp_path, fmt):
    p = tmp_path / f"r_{fmt}.set"
    x = _write(p, fmt)
    raw = read_raw(p)
    theirs = mne.io.read_raw_eeglab(p, preload=True, verbose="error")
    assert raw.ch_names == tuple(NAMES) and raw.sfreq == 250.0
    np.testing.assert_allclose(raw.data, theirs.get_data(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(raw.data, x, rtol=1e-6, atol=1e-12)  # float32 storage
    assert raw.ch_types == ("eeg",) * 4 + ("eog",)
    assert raw.meta["events"] == [("stim", 125), ("resp", 300)]
    np.testing.assert_allclose(
        theirs.annotations.onset, [e[1] / 250.0 for e in raw.meta["events"]]
    )
    # positions follow MNE's reading of the EEGLAB X/Y/Z axes
    mpos = theirs.get_montage().get_positions()["ch_pos"]
    np.testing.assert_allclose(raw.meta["file_positions"][0], mpos["Fz"], atol=1e-12)


@pytest.mark.parity
def test_mne_export_eeglab(tmp_path):
    info = mne.create_info(["A1x", "B2", "C3"], 200.0, "eeg")
    src = mne.io.RawArray(
        np.random.default_rng(1).standard_normal((3, 400)) * 1e-5, info, verbose="error"
    )
    p = tmp_path / "m.set"
    mne.export.export_raw(p, src, fmt="eeglab", verbose="error")
    raw = read_eeglab(p)
    np.testing.assert_allclose(raw.data, src.get_data(), rtol=1e-6, atol=1e-12)


def _write_fdt(tmp_path, n_ch=3, n_t=100, trials=1, fdt_name="d.fdt", truncate=0):
    from scipy.io import savemat

    x = np.arange(n_ch * n_t, dtype="<f4").reshape(n_ch, n_t)
    chanlocs = np.zeros((n_ch,), dtype=[("labels", object), ("type", object)])
    for i in range(n_ch):
        chanlocs[i] = (f"E{i}", "EEG")
    event = np.zeros((1,), dtype=[("type", object), ("latency", object)])
    event[0] = ("go", 11.0)
    eeg = {
        "nbchan": float(n_ch),
        "pnts": float(n_t),
        "trials": float(trials),
        "srate": 100.0,
        "xmin": 0.0,
        "data": fdt_name,
        "chanlocs": chanlocs,
        "event": event,
    }
    savemat(tmp_path / "d.set", {"EEG": eeg}, appendmat=False)
    b = x.T.tobytes()  # channels fastest
    (tmp_path / "d.fdt").write_bytes(b[: len(b) - truncate])
    return x


def test_fdt_data(tmp_path):
    x = _write_fdt(tmp_path)
    raw = read_eeglab(tmp_path / "d.set", units="mV")
    np.testing.assert_array_equal(raw.data, x.astype(float) * 1e-3)
    assert raw.ch_names == ("E0", "E1", "E2") and raw.meta["events"] == [("go", 10)]
    theirs = mne.io.read_raw_eeglab(tmp_path / "d.set", preload=True, verbose="error")
    np.testing.assert_allclose(raw.data * 1e-3, theirs.get_data(), rtol=1e-12)  # MNE assumes µV


def test_fdt_bad(tmp_path):
    _write_fdt(tmp_path, truncate=8)
    with pytest.raises(BidsError, match=r"d.fdt: truncated data file \(1192 bytes, expected 1200"):
        read_eeglab(tmp_path / "d.set")
    _write_fdt(tmp_path, fdt_name="other.fdt")
    (tmp_path / "d.fdt").unlink()
    with pytest.raises(BidsError, match="points to data file 'other.fdt', which is missing"):
        read_eeglab(tmp_path / "d.set")
    _write_fdt(tmp_path, n_t=50, trials=2)
    with pytest.raises(BidsError, match="epoched EEGLAB data"):
        read_eeglab(tmp_path / "d.set")
    _write_fdt(tmp_path)
    with pytest.raises(BidsError, match="unknown unit 'parsec' for channel E0"):
        read_eeglab(tmp_path / "d.set", units={"E0": "parsec"})


def test_corrupt_set(tmp_path):
    p = tmp_path / "bad.set"
    p.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(BidsError, match="bad.set: cannot read EEGLAB .set file"):
        read_eeglab(p)
    with pytest.raises(BidsError, match="not found"):
        read_eeglab(tmp_path / "nothere.set")


@pytest.mark.parity
def test_v73_with_fdt(tmp_path):
    """A MATLAB v7.3 (HDF5) .set whose data live in a .fdt file."""
    h5py = importlib.import_module("h5py")
    x = np.random.default_rng(3).standard_normal((3, 200)) * 1e-5
    p = tmp_path / "h.set"
    eeglabio.export_set(str(p), x, 100.0, ["A", "B", "C"], fmt="v7.3")
    with h5py.File(p, "r+") as f:
        del f["data"]
        ds = f.create_dataset("data", data=np.array([ord(c) for c in "h.fdt"], "<u2")[:, None])
        ds.attrs["MATLAB_class"] = np.bytes_("char")
    (tmp_path / "h.fdt").write_bytes((x * 1e6).astype("<f4").T.tobytes())
    raw = read_eeglab(p)
    theirs = mne.io.read_raw_eeglab(p, preload=True, verbose="error")
    np.testing.assert_allclose(raw.data, theirs.get_data(), rtol=1e-12)
    np.testing.assert_allclose(raw.data, x, rtol=1e-6, atol=1e-12)
