"""Bad segments and boundaries: read from every source, epochs rejected as MNE does.

The parity tests write one small simulated recording with conditions, bad
segments (some ending exactly on an epoch's first sample or starting right after
its last), a lower-case ``bad_...`` and an EEGLAB-style ``boundary`` with
MNE-BIDS in EDF, BrainVision and EEGLAB, then compare the epochs kept, the drop
log and the evokeds with ``mne.Epochs(..., reject_by_annotation=True)`` on
``mne_bids.read_raw_bids``.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from exgsrc.annotations import DISCONTINUITIES, Annotations, annotation_overlaps
from exgsrc.io import discover, read_events, read_recording
from exgsrc.io.bids import read_bad_segments
from exgsrc.preprocessing import Raw, average, make_epochs

mne = importlib.import_module("mne")
mne_bids = importlib.import_module("mne_bids")

SFREQ = 250.0
N_TIMES = 250 * 20 + 37  # not a whole number of 1 s EDF records: MNE pads and marks it
TMIN, TMAX = -0.2, 0.5  # 176 samples: event k's window is [200 + 175 k, 376 + 175 k)
EVENT_ONSETS = np.round(np.arange(1.0, 19.3, 0.7), 6).tolist() + [19.95]  # last runs off the end
BAD = [
    (2.5, 0.4, "BAD_end_at_start"),  # ends exactly at 2.9 s = first sample of the 4th window
    (4.0, 0.0, "BAD_point"),  # zero duration inside two overlapping windows
    (5.704, 0.1, "BAD_after_stop"),  # 5.704 s = 1426: one past the last sample of window 6
    (7.0, 0.2, "bad_muscle"),  # lower case counts too
    (12.004, 0.0, "boundary"),  # MNE does not reject on it
    (15.3, 0.5, "BAD_blink"),
]


def _simulate():
    rng = np.random.default_rng(42)
    info = mne.create_info(["Fp1", "Fz", "Cz", "Pz", "Oz", "EOG"], SFREQ, ["eeg"] * 5 + ["eog"])
    x = rng.standard_normal((6, N_TIMES)) * 10e-6
    t = np.arange(N_TIMES) / SFREQ
    for k, on in enumerate(EVENT_ONSETS):  # an evoked bump after each event
        x[:5] += (3 + k % 2) * 5e-6 * np.exp(-(((t - on - 0.1) / 0.03) ** 2))
    raw = mne.io.RawArray(x, info, verbose="error")
    raw.set_meas_date(None)
    desc = ["A" if k % 2 else "B" for k in range(len(EVENT_ONSETS))]
    ann = mne.Annotations(EVENT_ONSETS, [0.0] * len(EVENT_ONSETS), desc)
    ann += mne.Annotations([b[0] for b in BAD], [b[1] for b in BAD], [b[2] for b in BAD])
    raw.set_annotations(ann)
    return raw


@pytest.fixture(scope="module", params=["EDF", "BrainVision", "EEGLAB"])
def dataset(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"bids_{request.param}")
    bp = mne_bids.BIDSPath(subject="01", task="seg", root=root, datatype="eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(
            _simulate(), bp, format=request.param, allow_preload=True, verbose="error"
        )
        mraw = mne_bids.read_raw_bids(bp, verbose="error")
    mraw.load_data(verbose="error")
    return request.param, root, mraw


def _mne_epochs(mraw, reject_by_annotation=True):
    event_id = {"A": 1, "B": 2}
    events, _ = mne.events_from_annotations(mraw, event_id=event_id, verbose="error")
    return mne.Epochs(
        mraw,
        events,
        event_id,
        TMIN,
        TMAX,
        baseline=(None, 0),
        reject_by_annotation=reject_by_annotation,
        preload=True,
        verbose="error",
    ), events


def _ours(root, reject_by_annotation=True):
    (rec,) = discover(root)
    raw = read_recording(rec)
    ev = read_events(rec)
    ep = make_epochs(
        raw,
        ev.sample,
        ev.trial_type,
        TMIN,
        TMAX,
        (None, 0.0),
        reject_by_annotation=reject_by_annotation,
    )
    return raw, ev, ep


@pytest.mark.parity
@pytest.mark.parametrize("rba", [True, False])
def test_epoch_selection_and_evokeds_match_mne(dataset, rba):
    fmt, root, mraw = dataset
    raw, ev, ep = _ours(root, rba)
    mep, events = _mne_epochs(mraw, rba)
    # bad segments and boundaries never become conditions
    assert ev.conditions == ("B", "A")
    np.testing.assert_array_equal(ev.sample, events[:, 0])
    assert raw.n_times == mraw.n_times
    # the same epochs dropped, for the same reasons
    assert [tuple(d) for d in ep.drop_log] == [tuple(d) for d in mep.drop_log]
    np.testing.assert_array_equal(ep.selection, mep.selection)
    if rba:
        dropped = {d[0] for d in ep.drop_log if d}
        assert {"BAD_end_at_start", "BAD_point", "bad_muscle", "BAD_blink"} <= dropped
        assert "boundary" not in dropped
        # windows 3 and 6 touch a bad segment only at their edges: kept
        assert ep.drop_log[2] == ("BAD_end_at_start",) and ep.drop_log[3] == ()
        assert ep.drop_log[6] == () and ep.drop_log[7] == ("BAD_after_stop",)
        assert ("BAD_ACQ_SKIP" if fmt == "EDF" else "TOO_SHORT") in dropped
    for cond in ("A", "B"):
        ours = average(ep, cond)
        theirs = mep[cond].average(picks="all")
        assert ours.nave == theirs.nave
        idx = [theirs.ch_names.index(n) for n in ours.ch_names]
        err = np.abs(ours.data - theirs.data[idx]).max() / np.abs(theirs.data).max()
        assert err < 1e-9, f"{fmt} {cond}: relative evoked difference {err:.2e}"


@pytest.mark.parity
def test_bad_segments_read_from_events_tsv_and_data_file(dataset):
    fmt, root, mraw = dataset
    (rec,) = discover(root)
    seg = read_bad_segments(rec)
    assert set(seg.description) == {b[2] for b in BAD}
    raw = read_recording(rec)
    bad = raw.annotations.select(("bad",))
    # the events.tsv segments, once each, plus the EDF exporter's padding
    expect = sorted(b[2] for b in BAD if b[2] != "boundary")
    if fmt == "EDF":
        expect = sorted(expect + ["BAD_ACQ_SKIP"])
        skip = bad.description.index("BAD_ACQ_SKIP")
        assert bad.onset[skip] == pytest.approx(N_TIMES / SFREQ)
    assert sorted(bad.description) == expect
    # MNE's own bad annotations on the same recording
    mbad = [(o, d, s) for o, d, s in zip(*_mne_ann(mraw), strict=True) if s.lower()[:3] == "bad"]
    assert sorted(s for _, _, s in mbad) == expect


def _mne_ann(mraw):
    a = mraw.annotations
    return a.onset, a.duration, list(a.description)


def test_discontinuities_opt_in(dataset):
    """With DISCONTINUITIES, an epoch across the boundary is dropped with reason 'boundary'."""
    fmt, root, _ = dataset
    raw, ev, ep = _ours(root, DISCONTINUITIES)
    boundary_sample = 12.004 * SFREQ
    starts = ev.sample + int(round(TMIN * SFREQ))
    across = (starts < boundary_sample) & (starts + 175 > boundary_sample)
    assert across.sum() == 1
    assert all(ep.drop_log[i] == ("boundary",) for i in np.flatnonzero(across))
    details = [d for d in ep.meta["drop_details"] if d["reason"] == "annotation"]
    assert any("'boundary'" in d["detail"] for d in details)


@pytest.mark.parity
def test_overlap_rule_edges():
    """MNE's strict rule at the edges, point and NaN-length annotations, prefixes."""
    sf = 100.0
    on, du = [1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 0.0, np.nan, 1.0, 0.1]
    desc = ["BAD_a", "bad_b", "BAD_nan", "EDGE x", "keep"]
    ann = Annotations(on, du, desc)
    # 11-sample epochs: start 90 covers samples 90..100, i.e. [0.9, 1.01) s
    starts = [90, 150, 101, 190, 200, 189, 295, 395, 490]
    got = annotation_overlaps(ann, starts, 11, sf)
    # NaN duration counts as 0 (as MNE's set_annotations makes it): 3.0 lies in [2.95, 3.06)
    assert got == ["BAD_a", None, "BAD_a", "bad_b", None, None, "BAD_nan", None, None]
    assert annotation_overlaps(ann, starts, 11, sf, DISCONTINUITIES)[-2:] == ["EDGE x"] * 2
    # the same decisions as MNE's Epochs on a raw with these annotations
    info = mne.create_info(["A"], sf, "eeg")
    mraw = mne.io.RawArray(np.zeros((1, 1000)), info, verbose="error")
    mraw.set_annotations(mne.Annotations(on, du, desc))
    events = np.column_stack([starts, np.zeros(9, int), np.ones(9, int)])
    order = np.argsort(starts)
    mep = mne.Epochs(mraw, events[order], tmin=0, tmax=0.1, baseline=None, verbose="error")
    mep.drop_bad(verbose="error")
    theirs = [d[0] if d else None for d in mep.drop_log]
    assert [got[i] for i in order] == theirs


def test_make_epochs_precedence_and_opt_out():
    sf = 100.0
    x = np.random.default_rng(0).standard_normal((2, 1000)) * 1e-6
    ann = Annotations([0.0, 9.5], [0.5, 0.5], ["BAD_start", "BAD_end"])
    raw = Raw(x, sf, ("A", "B"), ("eeg", "eeg"), annotations=ann)
    ep = make_epochs(raw, [5, 300, 990], ["c"] * 3, -0.1, 0.2)
    # NO_DATA before the annotation (MNE's order); the annotation before TOO_SHORT
    assert ep.drop_log == (("NO_DATA",), (), ("BAD_end",))
    ep = make_epochs(raw, [20, 300], ["c"] * 2, -0.1, 0.2)
    assert ep.drop_log == (("BAD_start",), ())
    ep = make_epochs(raw, [20, 300, 990], ["c"] * 3, -0.1, 0.2, reject_by_annotation=False)
    assert ep.drop_log == ((), (), ("TOO_SHORT",))
    # Raw keeps its annotations through replace-style steps and defaults to none
    assert len(Raw(x, sf, ("A", "B"), ("eeg", "eeg")).annotations) == 0
    with pytest.raises(TypeError, match="Annotations"):
        Raw(x, sf, ("A", "B"), ("eeg", "eeg"), annotations=[(0, 1, "BAD")])


def test_annotations_container():
    a = Annotations([2.0, 1.0], [0.5, np.nan], ["BAD_x", "boundary"])
    assert a.description == ("boundary", "BAD_x") and a.onset.tolist() == [1.0, 2.0]
    assert a == Annotations([1.0, 2.0], [np.nan, 0.5], ["boundary", "BAD_x"])
    assert a.select().description == ("BAD_x",)
    assert a.select(DISCONTINUITIES) == a
    # merge drops entries of the other that match within the tolerance (any case)
    b = Annotations([2.001, 5.0], [0.5, 1.0], ["bad_X", "BAD_y"])
    assert a.merge(b, tol=0.002).description == ("boundary", "BAD_x", "BAD_y")
    assert len(a.merge(b, tol=0.0)) == 4
    with pytest.raises(ValueError, match="durations must be >= 0"):
        Annotations([0.0], [-1.0], ["BAD"])
    with pytest.raises(ValueError, match="2 onsets but 1 descriptions"):
        Annotations([0.0, 1.0], [0.0, 0.0], ["BAD"])
    with pytest.raises(ValueError, match="finite"):
        Annotations([np.nan], [0.0], ["BAD"])


def test_events_tsv_segments_are_not_conditions(tmp_path):
    from exgsrc.io import read_events

    p = tmp_path / "events.tsv"
    p.write_text(
        "onset\tduration\ttrial_type\n1.0\t0\tgo\n1.5\t0.25\tBAD_blink\n2.0\tn/a\tboundary\n"
        "3.0\t0\tstop\n4.0\t1\tbad\n"
    )
    ev = read_events(p, sfreq=100.0)
    assert ev.trial_type == ("go", "stop") and list(ev.sample) == [100, 300]
    assert any("3 rows mark bad segments or boundaries" in w for w in ev.meta["warnings"])
    seg = read_bad_segments(p)
    assert seg.description == ("BAD_blink", "boundary", "bad")
    assert seg.duration.tolist() == [0.25, 0.0, 1.0]  # n/a -> 0, as MNE-BIDS reads it


def test_discovery_leaves_the_same_segment_markers_out_of_conditions(tmp_path):
    from exgsrc.annotations import DISCONTINUITIES
    from exgsrc.io.discovery import SEGMENT_MARKERS
    from exgsrc.io.events import event_codes

    assert SEGMENT_MARKERS == DISCONTINUITIES
    path = tmp_path / "sub-01_task-x_events.tsv"
    rows = ["BAD_ACQ_SKIP", "boundary", "EDGE boundary", "New Segment/", "bad blink", "go", "n/a"]
    path.write_text(
        "onset\tduration\ttrial_type\n" + "".join(f"{i}\t0\t{t}\n" for i, t in enumerate(rows))
    )
    assert event_codes(path) == ["go"]
