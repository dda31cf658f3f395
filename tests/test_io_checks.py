"""Read-time data checks (issue 16): non-finite samples, flat and implausible channels,
BrainVision byte order and size consistency, EDF header sanity, file sizes."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

from exgsrc.annotations import Annotations
from exgsrc.io import BidsError, discover, read_recording
from exgsrc.io.brainvision import read_brainvision
from exgsrc.io.checks import check_finite, find_bad_channels
from exgsrc.io.edf import read_edf, read_edf_header
from exgsrc.io.eeglab import read_eeglab
from exgsrc.preprocessing import Raw, make_epochs

edfio = importlib.import_module("edfio")
eeglabio = importlib.import_module("eeglabio.raw")


# ------------------------------------------------------------------------------ helpers


def _vhdr(folder, binfmt, n_ch=3, sfreq=500.0, extra_common="", extra_binary="", res=0.1):
    lines = [
        "Brain Vision Data Exchange Header File Version 1.0",
        "[Common Infos]",
        "Codepage=UTF-8",
        "DataFile=d.eeg",
        "MarkerFile=d.vmrk",
        "DataFormat=BINARY",
        "DataOrientation=MULTIPLEXED",
        f"NumberOfChannels={n_ch}",
        f"SamplingInterval={1e6 / sfreq:g}",
        extra_common,
        "[Binary Infos]",
        f"BinaryFormat={binfmt}",
        extra_binary,
        "[Channel Infos]",
    ] + [f"Ch{i + 1}=C{i + 1},,{res},µV" for i in range(n_ch)]
    (folder / "d.vhdr").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "d.vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n[Marker Infos]\n"
        "Mk1=New Segment,,1,1,0\nMk2=Stimulus,S  1,11,1,0\n"
        "Mk3=Bad Interval,Bad Min-Max,101,50,0\n",
        encoding="utf-8",
    )
    return folder / "d.vhdr"


def _uv(n_ch=3, n=1000, seed=0):
    return np.random.default_rng(seed).uniform(-50, 50, (n_ch, n))  # µV


def _edf(path, x_uv=None, sfreq=100.0, labels=("A", "B")):
    if x_uv is None:
        x_uv = _uv(len(labels), 1000)
    sigs = [
        edfio.EdfSignal(
            x_uv[i],
            sfreq,
            label=lab,
            physical_dimension="uV",
            physical_range=(-500.0, 500.0),
            digital_range=(-32768, 32767),
        )
        for i, lab in enumerate(labels)
    ]
    edfio.Edf(sigs).write(path)
    return path


def _patch(path, offset, width, text):
    b = bytearray(path.read_bytes())
    b[offset : offset + width] = text.ljust(width).encode("ascii")
    path.write_bytes(bytes(b))


# ------------------------------------------------------------------------------ non-finite


@pytest.mark.parametrize("bad_value,kind", [(np.nan, "1 NaN, 0 Inf"), (np.inf, "0 NaN, 1 Inf")])
def test_brainvision_nonfinite_raises_naming_file_channel_time(tmp_path, bad_value, kind):
    x = _uv().astype("<f4")
    x[1, 123] = bad_value
    vhdr = _vhdr(tmp_path, "IEEE_FLOAT_32")
    x.T.tofile(tmp_path / "d.eeg")
    with pytest.raises(BidsError) as err:
        read_brainvision(vhdr)
    msg = str(err.value)
    assert "d.eeg" in msg and f"1 non-finite samples ({kind})" in msg
    assert "channel 'C2', t = 0.246 s (sample 123)" in msg


def test_nonfinite_as_bad_segments(tmp_path):
    x = _uv().astype("<f4")
    x[0, 200:210] = np.nan
    x[2, 205:215] = -np.inf
    x[1, 999] = np.nan
    vhdr = _vhdr(tmp_path, "IEEE_FLOAT_32")
    x.T.tofile(tmp_path / "d.eeg")
    raw = read_brainvision(vhdr, on_nonfinite="annotate")
    assert np.isfinite(raw.data).all()
    seg = raw.annotations.select(("BAD_nonfinite",))
    np.testing.assert_allclose(seg.onset, [200 / 500, 999 / 500])
    np.testing.assert_allclose(seg.duration, [15 / 500, 1 / 500])
    # filled in by linear interpolation between the neighbouring finite samples
    expect = np.interp(np.arange(200, 210), [199, 210], x[0, [199, 210]].astype(float))
    np.testing.assert_allclose(raw.data[0, 200:210], expect * 1e-7, rtol=1e-6)
    assert any("d.eeg" in w and "BAD_nonfinite" in w for w in raw.meta["warnings"])
    # epochs over them are dropped with the reason
    ep = make_epochs(raw, [205, 600], ["a", "a"], -0.1, 0.1, None)
    assert ep.drop_log == (("BAD_nonfinite",), ())


def test_eeglab_nonfinite(tmp_path):
    x = _uv(3, 400) * 1e-6
    x[2, 50] = np.nan
    p = tmp_path / "n.set"
    eeglabio.export_set(str(p), x, 100.0, ["F", "G", "H"])
    with pytest.raises(BidsError, match=r"n.set: 1 non-finite samples .*channel 'H', t = 0.5 s"):
        read_eeglab(p)
    raw = read_eeglab(p, on_nonfinite="annotate")
    assert raw.annotations.description == ("BAD_nonfinite",)


def test_check_finite_unit():
    data = np.zeros((2, 10))
    out, ann, msg = check_finite(data, 10.0, ["a", "b"], "f")
    assert out is data and len(ann) == 0 and msg is None
    data[1, :] = np.nan
    out, ann, msg = check_finite(data, 10.0, ["a", "b"], "f", "annotate")
    assert (out[1] == 0).all() and ann.onset.tolist() == [0.0] and ann.duration.tolist() == [1.0]
    with pytest.raises(ValueError, match="on_nonfinite"):
        check_finite(data, 10.0, ["a", "b"], "f", "ignore")


# ------------------------------------------------------------------------------ channels


def test_flat_and_implausible_channels(tmp_path):
    x = _uv(3, 1000)
    x[1] = 0.0
    raw = read_edf(_edf(tmp_path / "f.edf", x, labels=("A", "B", "C")))
    assert [c for c, _ in raw.meta["suspect_channels"]] == ["B"]
    assert raw.meta["suspect_channels"][0][1].startswith("flat")
    assert any("f.edf: channel B is flat" in w for w in raw.meta["warnings"])
    assert raw.bads == ()  # reported, not marked
    v = np.vstack([x * 1e-6, np.full((1, 1000), 3.0), np.linspace(0, 0.05, 1000)])
    names = ["A", "B", "C", "STI", "D"]
    got = find_bad_channels(v, names, ["eeg", "eeg", "eeg", "stim", "eeg"])
    assert [c for c, _ in got] == ["B", "STI", "D"]
    assert got[2][1] == "implausible amplitude (peak-to-peak 50 mV > 20 mV)"
    # the stim channel's numbers are not checked for amplitude, only for flatness
    assert got[1][1].startswith("flat")
    assert [c for c, _ in find_bad_channels(v, names, max_ptp=0.1)] == ["B", "STI"]


# ------------------------------------------------------------------------------ BrainVision


@pytest.mark.parametrize(
    "binfmt,dt", [("INT_16", "i2"), ("INT_32", "i4"), ("IEEE_FLOAT_32", "f4")]
)
def test_brainvision_big_endian(tmp_path, binfmt, dt):
    stored = np.random.default_rng(3).integers(-3000, 3000, (3, 200)).astype(dt)
    vhdr = _vhdr(tmp_path, binfmt, extra_binary="UseBigEndianOrder=YES")
    stored.T.astype(">" + dt).tofile(tmp_path / "d.eeg")
    raw = read_brainvision(vhdr)
    np.testing.assert_allclose(raw.data, stored.astype(float) * (1e-6 * 0.1), rtol=1e-12)
    _vhdr(tmp_path, binfmt, extra_binary="UseBigEndianOrder=MAYBE")
    with pytest.raises(BidsError, match=r"d.vhdr: \[Binary Infos\] UseBigEndianOrder='MAYBE'"):
        read_brainvision(vhdr)


def test_brainvision_int16_header_float32_data(tmp_path):
    x = _uv(3, 1000).astype("<f4")  # float32 data
    x.T.tofile(tmp_path / "d.eeg")
    # size inconsistent with the declared length: refused, naming file and fields
    vhdr = _vhdr(tmp_path, "INT_16", extra_common="DataPoints=1000")
    with pytest.raises(BidsError) as err:
        read_brainvision(vhdr)
    assert str(err.value) == (
        f"{tmp_path / 'd.eeg'}: data file has 12000 bytes but the header declares "
        "DataPoints=1000 x NumberOfChannels=3 x INT_16 (2 bytes) = 6000 bytes (wrong data "
        "format, channel count or length in the header?)"
    )
    # size consistent (no DataPoints): the decoded numbers are flagged as implausible
    vhdr = _vhdr(tmp_path, "INT_16")
    raw = read_brainvision(vhdr)
    assert {c for c, _ in raw.meta["suspect_channels"]} == {"C1", "C2", "C3"}
    assert all("full scale" in why for _, why in raw.meta["suspect_channels"])
    assert any("d.vhdr: channel C1 is full scale" in w for w in raw.meta["warnings"])


def test_brainvision_size_not_whole_values(tmp_path):
    np.zeros(3 * 101, "<i2").tofile(tmp_path / "d.eeg")  # 606 bytes: not float32 values
    vhdr = _vhdr(tmp_path, "IEEE_FLOAT_32")
    with pytest.raises(BidsError, match=r"d.eeg: data file has 606 bytes, not a whole number of "):
        read_brainvision(vhdr)


def test_brainvision_bad_interval_annotation(tmp_path):
    vhdr = _vhdr(tmp_path, "INT_16")
    (_uv().T * 10).astype("<i2").tofile(tmp_path / "d.eeg")
    raw = read_brainvision(vhdr)
    assert raw.annotations.description == ("Stimulus/S  1", "Bad Interval/Bad Min-Max")
    np.testing.assert_allclose(raw.annotations.onset, [10 / 500, 100 / 500])
    ep = make_epochs(raw, [120, 400], ["a", "a"], -0.05, 0.05, None)
    assert ep.drop_log == (("Bad Interval/Bad Min-Max",), ())


# ------------------------------------------------------------------------------ EDF header

# fixed-header offsets: n records 236, record duration 244, n signals 252; then per-signal
# blocks (label 16, transducer 80, dimension 8, phys min 8, phys max 8, dig min 8, ...)


@pytest.mark.parametrize(
    "value,problem",
    [
        (
            "0",
            "header field 'duration of a data record' is 0.0 s; it must be positive to "
            "give a sampling rate (samples per record / record duration)",
        ),
        (
            "-1",
            "header field 'duration of a data record' is -1.0 s; it must be positive to "
            "give a sampling rate (samples per record / record duration)",
        ),
        (
            "1e-6",
            "header gives 100 samples per record (signal 'A') / record duration 1e-06 s = "
            "1e+08 Hz, an implausible sampling rate",
        ),
    ],
)
def test_edf_record_duration(tmp_path, value, problem):
    p = _edf(tmp_path / "r.edf")
    _patch(p, 244, 8, value)
    with pytest.raises(BidsError) as err:
        read_edf(p)
    assert str(err.value) == f"{p}: {problem}"


def test_edf_digital_min_equals_max(tmp_path):
    p = _edf(tmp_path / "g.edf")
    n_sig = read_edf_header(p)["n_signals"]
    dmin = 256 + n_sig * (16 + 80 + 8 + 8 + 8)
    _patch(p, dmin, 8, "100")  # signal A: digital min
    _patch(p, dmin + 8 * n_sig, 8, "100")  # signal A: digital max
    with pytest.raises(BidsError) as err:
        read_edf(p)
    assert str(err.value) == (
        f"{p}: signal 'A': digital minimum 100 equals digital maximum 100; "
        "cannot scale to physical values"
    )


def test_edf_not_a_number_and_no_record(tmp_path):
    p = _edf(tmp_path / "h.edf")
    _patch(p, 244, 8, "one")
    with pytest.raises(
        BidsError, match=r"h.edf: header field 'duration of a data record' is 'one'"
    ):
        read_edf(p)
    p = _edf(tmp_path / "s.edf")
    n_sig = read_edf_header(p)["n_signals"]
    _patch(p, 256 + n_sig * (16 + 80 + 8 * 5 + 80), 8, "1000")  # A: 1000 samples per record
    p.write_bytes(p.read_bytes()[: 256 * (n_sig + 1) + 100])
    with pytest.raises(
        BidsError, match=re.escape("s.edf: file holds 100 data bytes, less than one")
    ):
        read_edf(p)


def test_edf_rate_disagrees_with_eeg_json(tmp_path):
    root = tmp_path / "ds"
    eeg = root / "sub-1" / "eeg"
    eeg.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    p = _edf(eeg / "sub-1_task-x_eeg.edf")
    (eeg / "sub-1_task-x_eeg.json").write_text('{"SamplingFrequency": 250}')
    (rec,) = discover(root)
    with pytest.raises(BidsError) as err:
        read_recording(rec)
    assert str(err.value) == (
        f"{p}: header gives 100 samples per record (signal 'A') / record duration 1 s = "
        f"100 Hz, but {eeg / 'sub-1_task-x_eeg.json'}: SamplingFrequency is 250 Hz"
    )
    (eeg / "sub-1_task-x_eeg.json").write_text('{"SamplingFrequency": 100}')
    assert read_recording(rec).sfreq == 100.0


# ------------------------------------------------------------------------------ EEGLAB size


def test_fdt_larger_than_declared(tmp_path):
    x = _uv(3, 100) * 1e-6
    p = tmp_path / "e.set"
    eeglabio.export_set(str(p), x, 100.0, ["A", "B", "C"])
    # move the data to a .fdt file that holds more than nbchan x pnts floats
    scipy_io = importlib.import_module("scipy.io")
    mat = scipy_io.loadmat(str(p), squeeze_me=False, struct_as_record=True)
    mat = {k: v for k, v in mat.items() if not k.startswith("__")}
    mat["data"] = np.array(["e.fdt"])
    scipy_io.savemat(str(p), mat)
    (x.T * 1e6).astype("<f4").tofile(tmp_path / "e.fdt")
    assert read_eeglab(p).n_times == 100
    with open(tmp_path / "e.fdt", "ab") as fid:
        fid.write(b"\0" * 12)
    with pytest.raises(BidsError) as err:
        read_eeglab(p)
    assert str(err.value).startswith(
        f"{tmp_path / 'e.fdt'}: data file has 1212 bytes but the header declares nbchan=3 x "
        "pnts=100 x float32 (4 bytes) = 1200 bytes"
    )


def test_raw_annotations_type():
    ann = Annotations([0.5], [0.1], ["BAD_x"])
    raw = Raw(np.zeros((1, 10)), 10.0, ("A",), ("eeg",), annotations=ann)
    assert raw.annotations is ann
