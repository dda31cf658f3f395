"""BrainVision reader: pybv round trips, hand-written headers for every binary format and
orientation, MNE parity, and bad input."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.io import BidsError, read_raw
from exgsrc.io.brainvision import read_brainvision

pybv = importlib.import_module("pybv")


@pytest.mark.parametrize("fmt,res", [("binary_float32", 0.1), ("binary_int16", 0.1)])
@pytest.mark.parametrize("unit", ["µV", "mV", "V"])
@pytest.mark.filterwarnings("ignore:Encountered unsupported voltage units")
def test_pybv_roundtrip(tmp_path, fmt, res, unit):
    rng = np.random.default_rng(0)
    scale = {"µV": 1e-6, "mV": 1e-3, "V": 1.0}[unit]
    x = np.round(rng.uniform(-300, 300, (4, 700)) / res) * res * scale  # representable, V
    events = np.array([[100, 1], [350, 2]])
    pybv.write_brainvision(
        data=x,
        sfreq=500.0,
        ch_names=["Fp1", "C3", "Cz", "O2"],
        fname_base="rec",
        folder_out=tmp_path,
        events=events,
        resolution=res,
        unit=unit,
        fmt=fmt,
    )
    raw = read_raw(tmp_path / "rec.vhdr")
    assert raw.ch_names == ("Fp1", "C3", "Cz", "O2") and raw.sfreq == 500.0
    # pybv truncates (not rounds) to integers: allow one quantisation step
    np.testing.assert_allclose(raw.data, x, rtol=0, atol=1.0001 * res * scale)
    stim = [m for m in raw.meta["markers"] if m[0] == "Stimulus"]
    assert [m[2] for m in stim] == [100, 350]


def _write_vhdr(folder, n_ch, sfreq, binfmt, orient, units, res, data_file="d.eeg", extra=""):
    lines = [
        "Brain Vision Data Exchange Header File Version 1.0",
        "; comment",
        "[Common Infos]",
        "Codepage=UTF-8",
        f"DataFile={data_file}",
        "MarkerFile=d.vmrk",
        "DataFormat=BINARY",
        f"DataOrientation={orient}",
        f"NumberOfChannels={n_ch}",
        f"SamplingInterval={1e6 / sfreq:g}",
        extra,
        "[Binary Infos]",
        f"BinaryFormat={binfmt}",
        "[Channel Infos]",
    ]
    for i in range(n_ch):
        lines.append(f"Ch{i + 1}=E\\1{i + 1},,{res[i]},{units[i]}")
    (folder / "d.vhdr").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "d.vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n[Marker Infos]\n"
        "Mk1=New Segment,,1,1,0\nMk2=Stimulus,S  1,11,1,0\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    "binfmt,dt",
    [("INT_16", "<i2"), ("UINT_16", "<u2"), ("INT_32", "<i4"), ("IEEE_FLOAT_32", "<f4")],
)
@pytest.mark.parametrize("orient", ["MULTIPLEXED", "VECTORIZED"])
def test_all_binary_formats(tmp_path, binfmt, dt, orient):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 1000, (3, 50)).astype(dt)
    res, units = [0.5, 2.0, 1.0], ["µV", "mV", "nV"]
    _write_vhdr(tmp_path, 3, 250.0, binfmt, orient, units, res)
    arr = stored.T if orient == "MULTIPLEXED" else stored
    arr.astype(dt).tofile(tmp_path / "d.eeg")
    raw = read_brainvision(tmp_path / "d.vhdr")
    expect = stored.astype(float) * (np.array(res) * np.array([1e-6, 1e-3, 1e-9]))[:, None]
    np.testing.assert_allclose(raw.data, expect, rtol=1e-12)
    assert raw.ch_names == ("E,1", "E,2", "E,3") and raw.sfreq == 250.0
    assert raw.meta["markers"][1] == ("Stimulus", "S  1", 10, 1)


@pytest.mark.parity
def test_matches_mne(tmp_path):
    mne = importlib.import_module("mne")
    x = np.random.default_rng(2).standard_normal((5, 900)) * 20e-6
    pybv.write_brainvision(
        data=x,
        sfreq=1000.0,
        ch_names=list("ABCDE"),
        fname_base="m",
        folder_out=tmp_path,
        fmt="binary_int16",
        resolution=0.05,
    )
    ours = read_brainvision(tmp_path / "m.vhdr")
    theirs = mne.io.read_raw_brainvision(tmp_path / "m.vhdr", preload=True, verbose="error")
    np.testing.assert_allclose(ours.data, theirs.get_data(), rtol=1e-12, atol=1e-20)


def test_bad_brainvision(tmp_path):
    _write_vhdr(
        tmp_path, 2, 100.0, "INT_16", "MULTIPLEXED", ["µV", "µV"], [1, 1], data_file="gone.eeg"
    )
    with pytest.raises(BidsError, match="points to data file 'gone.eeg', which is missing"):
        read_brainvision(tmp_path / "d.vhdr")
    _write_vhdr(tmp_path, 2, 100.0, "INT_16", "VECTORIZED", ["µV", "µV"], [1, 1])
    np.zeros(21, "<i2").tofile(tmp_path / "d.eeg")  # odd count: truncated
    with pytest.raises(BidsError, match="truncated data file"):
        read_brainvision(tmp_path / "d.vhdr")
    _write_vhdr(tmp_path, 2, 100.0, "INT_16", "MULTIPLEXED", ["µV", "µV"], [1, 1])
    raw = read_brainvision(tmp_path / "d.vhdr")
    assert raw.n_times == 10 and any("truncated" in w for w in raw.meta["warnings"])
    _write_vhdr(tmp_path, 2, 100.0, "INT_64", "MULTIPLEXED", ["µV", "µV"], [1, 1])
    with pytest.raises(BidsError, match="unsupported BinaryFormat 'INT_64'"):
        read_brainvision(tmp_path / "d.vhdr")
    _write_vhdr(tmp_path, 2, 100.0, "INT_16", "MULTIPLEXED", ["µV", "furlong"], [1, 1])
    raw = read_brainvision(tmp_path / "d.vhdr")
    assert any("E,2" in w and "'furlong'" in w for w in raw.meta["warnings"])
    (tmp_path / "x.vhdr").write_text("hello\n")
    with pytest.raises(BidsError, match="not a BrainVision header"):
        read_brainvision(tmp_path / "x.vhdr")
