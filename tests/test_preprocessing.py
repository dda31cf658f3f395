"""Preprocessing: MNE parity of filter/epochs/evoked/covariance and behaviour on edge cases."""

from __future__ import annotations

import importlib
import warnings
from dataclasses import replace

import numpy as np
import pytest

from exgsrc.io import discover, read_events, read_recording
from exgsrc.preprocessing import (
    Raw,
    average,
    baseline_covariance,
    design_fir_filter,
    filter_data,
    filter_raw,
    hamming_lowpass,
    make_epochs,
    resample,
    set_average_reference,
)

mne = importlib.import_module("mne")


@pytest.mark.parity
@pytest.mark.parametrize(
    "sfreq,l_freq,h_freq,n",
    [
        (128.0, 1.0, 40.0, 3000),
        (1000.0, 0.1, None, 12000),
        (250.0, None, 30.0, 4000),
        (128.0, 1.0, 40.0, 150),
        (500.0, 0.5, 45.0, 4000),
        (256.0, 8.0, 12.0, 3000),
    ],
)
def test_filter_matches_mne(sfreq, l_freq, h_freq, n):
    x = np.random.default_rng(0).standard_normal((3, n)) * 1e-5
    ours = filter_data(x, sfreq, l_freq, h_freq)
    theirs = mne.filter.filter_data(x, sfreq, l_freq, h_freq, fir_design="firwin", verbose="error")
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10 * np.abs(theirs).max())


@pytest.mark.parity
def test_filter_taps_match_mne():
    h = design_fir_filter(1000.0, 1.0, 40.0)
    ref = mne.filter.create_filter(None, 1000.0, 1.0, 40.0, fir_design="firwin", verbose="error")
    assert h.size == ref.size == 3301
    np.testing.assert_allclose(h, ref, atol=1e-14)


@pytest.mark.parity
def test_hamming_lowpass_equals_scipy_firwin():
    # the taps MNE's firwin design sums, built without importing scipy.signal:
    # bit for bit equal, so filtered data does not change by a single ulp
    from scipy.signal import firwin

    rng = np.random.default_rng(0)
    for _ in range(300):
        sfreq = float(rng.choice([100.0, 163.84, 250.0, 256.0, 500.0, 1000.0, 2048.0]))
        n_taps = int(rng.integers(1, 4000)) | 1
        cutoff = float(rng.uniform(0.001, 0.999)) * sfreq / 2
        theirs = firwin(n_taps, cutoff, window="hamming", pass_zero=True, fs=sfreq)
        np.testing.assert_array_equal(hamming_lowpass(n_taps, cutoff, sfreq), theirs)


def test_filter_bad_params():
    with pytest.raises(ValueError, match="h_freq=70"):
        design_fir_filter(128.0, 1.0, 70.0)
    with pytest.raises(ValueError, match="band-stop"):
        design_fir_filter(128.0, 40.0, 10.0)
    with pytest.raises(ValueError, match="too short"):
        design_fir_filter(128.0, 1.0, 40.0, filter_length=51)


@pytest.fixture(scope="module")
def shared(shared_bids_root):
    import mne_bids

    rec = discover(shared_bids_root)[0]
    raw = read_recording(rec)
    ev = read_events(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bp = mne_bids.BIDSPath(subject="01", task="squares", root=shared_bids_root, datatype="eeg")
        mraw = mne_bids.read_raw_bids(bp, verbose="error").load_data(verbose="error")
    return raw, ev, mraw


@pytest.mark.parity
def test_filtered_evoked_and_cov_match_mne(shared):
    raw, ev, mraw = shared
    fraw = filter_raw(raw, 1.0, 30.0)
    ep = make_epochs(fraw, ev.sample, ev.trial_type, -0.25, 0.7, (None, 0.0), {"eeg": 200e-6})
    m = mraw.copy().filter(1.0, 30.0, fir_design="firwin", verbose="error")
    events, event_id = mne.events_from_annotations(m, verbose="error")
    mep = mne.Epochs(
        m,
        events,
        event_id,
        -0.25,
        0.7,
        baseline=(None, 0),
        reject=dict(eeg=200e-6),
        preload=True,
        verbose="error",
    )
    # in place: the same numbers, no second copy of the recording
    data = np.array(raw.data, copy=True)
    inplace = filter_raw(replace(raw, data=data), 1.0, 30.0, copy=False)
    assert inplace.data is data
    np.testing.assert_array_equal(inplace.data, fraw.data)
    for cond in ("square", "rt"):
        ours, theirs = average(ep, cond), mep[cond].average(picks="all")
        assert ours.nave == theirs.nave
        idx = [theirs.ch_names.index(n) for n in ours.ch_names]
        err = np.abs(ours.data - theirs.data[idx]).max() / np.abs(theirs.data).max()
        assert err < 1e-9  # same FIR design as MNE: equal to rounding (issue allows 1e-3)
        assert err < 1e-10
    cov = baseline_covariance(ep, None, 0.0, "empirical", avg_ref=False)
    mcov = mne.compute_covariance(mep, tmax=0.0, method="empirical", verbose="error")
    idx = [mcov.ch_names.index(n) for n in cov.ch_names]
    ref = mcov.data[np.ix_(idx, idx)]
    np.testing.assert_allclose(cov.data, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    assert cov.nfree == mcov["nfree"]
    # default: covariance of the average-referenced data (what the inverse models)
    cov_ar = baseline_covariance(ep, None, 0.0, "empirical")
    mep_ar = mep.copy().set_eeg_reference("average", verbose="error")
    mcov_ar = mne.compute_covariance(mep_ar, tmax=0.0, method="empirical", verbose="error")
    ref_ar = mcov_ar.data[np.ix_(idx, idx)]
    np.testing.assert_allclose(cov_ar.data, ref_ar, rtol=1e-6, atol=1e-6 * np.abs(ref_ar).max())
    assert cov.ch_names == tuple(raw.ch_names[i] for i in raw.picks("eeg"))


@pytest.mark.parity
def test_average_reference_matches_mne(shared):
    raw, _, mraw = shared
    bads = ("T7",)
    ours = set_average_reference(Raw(raw.data, raw.sfreq, raw.ch_names, raw.ch_types, bads))
    m = mraw.copy()
    m.info["bads"] = list(bads)
    m.set_eeg_reference("average", verbose="error")
    np.testing.assert_allclose(ours.data, m.get_data(), rtol=1e-10, atol=1e-18)
    assert ours.meta["reference"] == "average"


def _toy_raw(n_t=1000, sfreq=100.0):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, n_t)) * 1e-6
    return Raw(data, sfreq, ("A", "B", "E"), ("eeg", "eeg", "eog"))


def test_epochs_edges_and_drop_log():
    raw = _toy_raw()
    data = raw.data.copy()
    data[1, 500:505] += 1e-3  # artifact on B around event at 500
    data[2, 300] += 1.0  # huge EOG blink, not checked unless asked
    raw = Raw(data, raw.sfreq, raw.ch_names, raw.ch_types)
    ev = [5, 300, 500, 995]
    ep = make_epochs(raw, ev, ["a", "a", "b", "b"], -0.1, 0.2, (None, 0), {"eeg": 50e-6})
    assert ep.drop_log == (("NO_DATA",), (), ("B",), ("TOO_SHORT",))
    assert ep.n_epochs == 1 and list(ep.selection) == [1] and ep.times.size == 31
    reasons = [d["reason"] for d in ep.meta["drop_details"]]
    assert reasons == ["NO_DATA", "peak-to-peak", "TOO_SHORT"]
    assert "B" in ep.meta["drop_details"][1]["detail"]
    assert any("'b'" in w and "all 2 epochs were rejected" in w for w in ep.meta["warnings"])
    with pytest.raises(ValueError, match="all 2 epochs of condition 'b' were rejected"):
        average(ep, "b")
    with pytest.raises(ValueError, match="condition 'zz' has no epochs"):
        average(ep, "zz")
    ep2 = make_epochs(raw, ev, ["a", "a", "b", "b"], -0.1, 0.2, None, {"eeg": 50e-6, "eog": 1e-3})
    assert ep2.drop_log[1] == ("E",)
    flat_raw = Raw(
        np.vstack([data[:1], np.zeros((1, 1000)), data[2:]]), 100.0, raw.ch_names, raw.ch_types
    )
    ep4 = make_epochs(flat_raw, [300], ["a"], -0.1, 0.2, None, flat={"eeg": 1e-9})
    assert ep4.drop_log == (("B",),) and ep4.meta["drop_details"][0]["reason"] == "flat"
    # baseline removes the pre-stimulus mean exactly
    ep3 = make_epochs(raw, [300], ["a"], -0.1, 0.2, (None, 0))
    np.testing.assert_allclose(ep3.data[0][:, ep3.times <= 0].mean(axis=1), 0, atol=1e-15)


def test_channel_selection_on_every_container():
    """picks / pick_channels act on the channel axis of Raw, Epochs and Evoked alike."""
    raw = replace(_toy_raw(), bads=("B",))
    ep = make_epochs(raw, [300, 500], ["a", "a"], -0.1, 0.2, None)
    ev = average(ep, "a")
    for obj in (raw, ep, ev):
        assert list(obj.picks()) == [0] and list(obj.picks(None, exclude_bads=False)) == [0, 1, 2]
        sub = obj.pick_channels(["E", "A"])
        assert type(sub) is type(obj) and sub.ch_names == ("E", "A")
        assert sub.ch_types == ("eog", "eeg") and sub.bads == ()
        np.testing.assert_array_equal(sub.data, np.take(obj.data, [2, 0], axis=-2))
        with pytest.raises(ValueError, match=rf"{type(obj).__name__}: channels \['Z'\] not found"):
            obj.pick_channels(["Z"])


def test_epochs_bad_args():
    raw = _toy_raw()
    with pytest.raises(ValueError, match="2 events but 1 labels"):
        make_epochs(raw, [100, 200], ["a"], -0.1, 0.1)
    with pytest.raises(ValueError, match="baseline start"):
        make_epochs(raw, [100], ["a"], -0.1, 0.1, (-0.5, 0))
    with pytest.raises(ValueError, match="reject"):
        make_epochs(raw, [100], ["a"], -0.1, 0.1, reject={"eeg": -1})


def test_raw_validation():
    with pytest.raises(ValueError, match="duplicate channel names"):
        Raw(np.zeros((2, 5)), 10.0, ("A", "A"), ("eeg", "eeg"))
    with pytest.raises(ValueError, match="bad channels"):
        Raw(np.zeros((2, 5)), 10.0, ("A", "B"), ("eeg", "eeg"), ("C",))


def test_resample_sine():
    sfreq = 1000.0
    t = np.arange(5000) / sfreq
    raw = Raw(np.sin(2 * np.pi * 5 * t)[None], sfreq, ("A",), ("eeg",))
    r = resample(raw, 250.0)
    assert r.sfreq == 250.0 and r.n_times == 1250
    tt = np.arange(1250) / 250.0
    np.testing.assert_allclose(
        r.data[0, 100:-100], np.sin(2 * np.pi * 5 * tt)[100:-100], atol=1e-3
    )


def test_covariance_from_raw_and_errors():
    raw = _toy_raw()
    cov = baseline_covariance(raw, avg_ref=False)
    assert cov.ch_names == ("A", "B")
    x = raw.data[:2]
    np.testing.assert_allclose(cov.data, np.cov(x, bias=False), rtol=1e-6)
    empty = make_epochs(raw, [1], ["a"], -0.1, 0.1)
    with pytest.raises(ValueError, match="no kept epoch"):
        baseline_covariance(empty)


@pytest.mark.parity
@pytest.mark.parametrize(
    "sfreq,new,n",
    [(1000.0, 250.0, 5000), (128.0, 100.0, 3001), (250.0, 500.0, 1234), (1000.0, 333.0, 4000)],
)
def test_resample_matches_mne(sfreq, new, n):
    x = np.random.default_rng(4).standard_normal((3, n)) * 1e-5
    ours = resample(Raw(x, sfreq, ("a", "b", "c"), ("eeg",) * 3), new)
    theirs = mne.io.RawArray(x, mne.create_info(3, sfreq, "eeg"), verbose="error")
    theirs.resample(new, verbose="error")
    ref = theirs.get_data()
    assert ours.data.shape == ref.shape and ours.sfreq == new
    np.testing.assert_allclose(ours.data, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_resample_polyphase_and_errors():
    raw = _toy_raw()
    assert resample(raw, 50.0, method="polyphase").n_times == 500
    with pytest.raises(ValueError, match="method must be"):
        resample(raw, 50.0, method="cubic")
    with pytest.raises(ValueError, match="positive"):
        resample(raw, 0.0)
