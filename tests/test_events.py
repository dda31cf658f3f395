"""Conditions from events.tsv and contrasts (exgsrc.io.events, exgsrc.io.bids.condition_rows,
exgsrc.preprocessing.combine_evoked), against MNE-Python where MNE has the same rule."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from exgsrc.containers import Epochs, Evoked
from exgsrc.io import BidsError, condition_rows, read_events
from exgsrc.io.events import (
    Contrast,
    columns_and_codes,
    contrast_nave,
    event_codes,
    event_columns,
    match_code,
    parse_conditions,
    parse_contrasts,
    resolve_conditions,
)
from exgsrc.preprocessing import average, combine_evoked

CODES = ["auditory/left", "auditory/right", "visual/left", "visual/right", "catch"]


def _events_tsv(path, rows, header=("onset", "duration", "trial_type", "value")):
    path.write_text(
        "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    )
    return path


# ---------------------------------------------------------------------------
# the matching rule


def test_tag_rule():
    assert match_code("auditory", "auditory/left")
    assert match_code("left", "auditory/left")
    assert match_code("left/auditory", "auditory/left")  # order-free, as MNE
    assert not match_code("auditory/left", "auditory")
    assert not match_code("audit", "auditory/left")  # whole tags only
    assert match_code("catch", "catch") and not match_code("catch", "catcher")


def test_numbers_match_codes_of_equal_value():
    assert match_code(2, "2") and match_code(2, "02") and match_code(2, "2.0")
    assert match_code("2", "2.0")  # text that reads as a number, too
    assert not match_code(2, "12") and not match_code(2, "n/a") and not match_code(1, "a")
    assert not match_code(True, "1")  # YAML's true is not the code 1


@pytest.mark.parity
def test_tag_rule_is_mnes():
    """Our rule selects what mne.event.match_event_names and mne.Epochs[...] select."""
    mne = importlib.import_module("mne")
    mne.set_log_level("error")
    keys = ["auditory", "left", "auditory/left", "left/auditory", "right/visual", "catch"]
    for key in keys:
        ours = sorted(c for c in CODES if match_code(key, c))
        assert ours == mne.event.match_event_names(CODES, key), key
    info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    event_id = {c: i + 1 for i, c in enumerate(CODES)}
    codes = [CODES[i % len(CODES)] for i in range(15)]
    events = np.array([[10 * i, 0, event_id[c]] for i, c in enumerate(codes)])
    epochs = mne.EpochsArray(np.zeros((15, 2, 3)), info, events=events, event_id=event_id)
    for name, rows in condition_rows(_events(codes), keys).items():
        np.testing.assert_array_equal(rows, epochs[name].selection, err_msg=name)


def _events(codes, column="trial_type", extra=None):
    from exgsrc.io.bids import Events

    n = len(codes)
    cols = {column: tuple(codes), **(extra or {})}
    return Events(
        np.arange(n, dtype=float),
        np.zeros(n),
        tuple(codes),
        np.arange(n) * 100,
        100.0,
        {"column": column},
        columns=cols,
    )


def test_resolve_all_list_and_merged_codes():
    # all: every code its own condition, no tag matching between them
    assert resolve_conditions(["a", "a/b"], "all") == {"a": ["a"], "a/b": ["a/b"]}
    assert resolve_conditions(CODES, ["auditory", "left"]) == {
        "auditory": ["auditory/left", "auditory/right"],
        "left": ["auditory/left", "visual/left"],  # one code may be in two conditions
    }
    merged = resolve_conditions(["1", "2", "11", "12"], {"standard": [1, 2], "target": [11, 12]})
    assert merged == {"standard": ["1", "2"], "target": ["11", "12"]}
    assert resolve_conditions(CODES, {"x": "nothing"}) == {"x": []}  # the caller decides
    assert resolve_conditions(["5"], [5]) == {"5": ["5"]}  # named by the key's text


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ([], "empty"),
        ({"a": []}, "lists no event codes"),
        (["a", "a"], "named more than once"),
        ([None], "text or a number"),
        ({"a": [""]}, "must not be empty"),
    ],
)
def test_malformed_conditions_spec(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_conditions(spec)


def test_condition_rows_by_column_and_merged_codes(tmp_path):
    rows = [
        (0.5, 0, "stim/std", 1),
        (1.0, 0, "stim/std", 2),
        (1.5, 0, "stim/dev", 11),
        (2.0, 0, "BAD_blink", "n/a"),
        (2.5, 0, "response", "n/a"),
        (3.0, 0, "stim/dev", 12),
    ]
    p = _events_tsv(tmp_path / "events.tsv", rows)
    ev = read_events(p, sfreq=100.0, column="value")
    assert ev.trial_type == ("1", "2", "11", "12") and ev.meta["column"] == "value"
    assert ev.columns["trial_type"] == ("stim/std", "stim/std", "stim/dev", "stim/dev")
    assert any("2 events with value n/a ignored" in w for w in ev.meta["warnings"])
    got = condition_rows(ev, {"standard": [1, 2], "deviant": [11, 12]})
    assert {k: v.tolist() for k, v in got.items()} == {"standard": [0, 1], "deviant": [2, 3]}
    # another column of the same Events; and the default column with tags
    assert condition_rows(ev, ["stim"], column="trial_type")["stim"].tolist() == [0, 1, 2, 3]
    ev_tt = read_events(p, sfreq=100.0)
    assert ev_tt.trial_type == ("stim/std", "stim/std", "stim/dev", "response", "stim/dev")
    assert condition_rows(ev_tt, ["dev"])["dev"].tolist() == [2, 4]
    assert list(condition_rows(ev_tt)) == ["stim/std", "stim/dev", "response"]
    with pytest.raises(ValueError, match="no column 'nope'"):
        condition_rows(ev, "all", column="nope")
    # DAG-time discovery reads the same codes (segment rows and n/a left out)
    assert event_codes(p, "value") == ["1", "2", "11", "12"]
    assert event_codes(p) == ["stim/std", "stim/dev", "response"]
    # ... and the workflow's one-read version gives both the columns and the codes
    assert columns_and_codes(p, "value") == (event_columns(p), event_codes(p, "value"))
    assert columns_and_codes(p, "nope") == (event_columns(p), None)


def test_explicit_column_missing_is_an_error_naming_the_file(tmp_path):
    p = _events_tsv(tmp_path / "ev.tsv", [(1.0, 0, "go", 1)])
    with pytest.raises(BidsError, match=r"ev.tsv: no column 'code' for the condition codes"):
        read_events(p, sfreq=100.0, column="code")
    with pytest.raises(BidsError, match=r"ev.tsv: no column 'code'"):
        event_codes(p, "code")
    # no column given and no trial_type: value, with a warning (the reader's fallback)
    q = _events_tsv(tmp_path / "v.tsv", [(1.0, 0, 3)], header=("onset", "duration", "value"))
    ev = read_events(q, sfreq=100.0)
    assert ev.trial_type == ("3",) and "conditions taken from 'value'" in ev.meta["warnings"][0]


def test_average_merges_codes():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((6, 2, 4))
    labels = ("1", "2", "11", "1", "12", "2")
    ep = Epochs(
        data,
        np.arange(4) / 100.0,
        labels,
        ("Cz", "Pz"),
        ("eeg", "eeg"),
        (),
        100.0,
        np.arange(6),
        np.arange(6),
        ((),) * 6,
        None,
    )
    ev = average(ep, "standard", codes=["1", "2"])
    assert ev.condition == "standard" and ev.nave == 4
    np.testing.assert_allclose(ev.data, data[[0, 1, 3, 5]].mean(0))
    with pytest.raises(ValueError, match=r"condition 'x' \(event codes \['9'\]\) has no epochs"):
        average(ep, "x", codes=["9"])


# ---------------------------------------------------------------------------
# contrasts


def test_parse_contrasts_and_their_errors():
    conds = ["standard", "target"]
    (c,) = parse_contrasts([{"name": "t-s", "conditions": {"target": 1, "standard": -1}}], conds)
    assert c == Contrast("t-s", {"target": 1.0, "standard": -1.0})
    assert c.nave({"target": 10, "standard": 40}) == pytest.approx(8.0)
    bad = [
        (
            {"name": "d", "conditions": {"target": 1, "stdandard": -1}},
            r"\['stdandard'\] not among",
        ),
        ({"name": "target", "conditions": {"target": 1}}, "already a condition"),
        ({"name": "d", "conditions": {"target": 0}}, "must be a non-zero number"),
        ({"name": "d", "conditions": {"target": True}}, "must be a non-zero number"),
        ({"name": "", "conditions": {"target": 1}}, "non-empty name"),
        ({"name": "d", "conditions": {}}, "expected"),
    ]
    for entry, match in bad:
        with pytest.raises(ValueError, match=match) as err:
            parse_contrasts([entry], conds)
        msg = str(err.value)
        assert msg.startswith("config contrasts[0]") and "\n" not in msg, msg
    twice = [{"name": "d", "conditions": {"target": 1}}] * 2
    with pytest.raises(ValueError, match=r"contrasts\[1\].*names two contrasts"):
        parse_contrasts(twice, conds)


def test_contrast_nave():
    assert contrast_nave([1, -1], [40, 40]) == 20.0
    assert contrast_nave([0.5, 0.5], [10, 10]) == 20.0  # the mean of two: twice the trials
    assert contrast_nave([1], [7]) == 7.0
    with pytest.raises(ValueError, match="positive"):
        contrast_nave([1, -1], [0, 3])


def _evoked(rng, name, nave, n_ch=3, n_t=5):
    return Evoked(
        rng.standard_normal((n_ch, n_t)) * 1e-6,
        np.arange(n_t) / 100.0,
        ("Cz", "Pz", "Oz")[:n_ch],
        nave,
        name,
        ("eeg",) * n_ch,
        bads=("Oz",) if name == "b" else (),
    )


@pytest.mark.parity
@pytest.mark.parametrize(
    ("weights", "naves"),
    [([1, -1], [40, 40]), ([1, -1], [38, 17]), ([2, -0.5, -0.5], [10, 23, 31]), ([0.3], [9])],
)
def test_combine_evoked_matches_mne(weights, naves):
    mne = importlib.import_module("mne")
    mne.set_log_level("error")
    rng = np.random.default_rng(len(naves))
    parts = [_evoked(rng, n, v) for n, v in zip("abc", naves, strict=False)]
    ours = combine_evoked(parts, weights)
    info = mne.create_info(list(parts[0].ch_names), 100.0, "eeg")
    theirs = mne.combine_evoked(
        [mne.EvokedArray(e.data, info, nave=e.nave, comment=e.condition) for e in parts], weights
    )
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-15, atol=0)
    assert ours.nave == pytest.approx(theirs.nave, rel=1e-15)
    assert ours.nave == pytest.approx(contrast_nave(weights, naves), rel=1e-15)
    assert ours.condition == theirs.comment
    assert set(ours.bads) == ({"Oz"} if len(parts) > 1 else set())
    named = combine_evoked(parts, weights, condition="diff")
    assert named.condition == "diff" and named.meta["weights"] == [float(w) for w in weights]


def test_combine_evoked_refuses_mismatched_parts():
    rng = np.random.default_rng(1)
    a, b = _evoked(rng, "a", 5), _evoked(rng, "b", 5, n_ch=2)
    with pytest.raises(ValueError, match="channels"):
        combine_evoked([a, b], [1, -1])
    with pytest.raises(ValueError, match="2 evokeds but 1 weights"):
        combine_evoked([a, a], [1])


@pytest.fixture(scope="module")
def contrast_case(single_thread_blas):
    """MNE's and our operators, and a contrast of two evokeds with a non-integer nave."""
    from test_inverse import _build_case, _operators

    case = _build_case("biosemi32", 2, 3, rank_deficient=False)
    rng = np.random.default_rng(4)
    parts = [case["evoked"].copy(), case["evoked"].copy()]
    parts[1].data = rng.standard_normal(parts[1].data.shape) * 1e-6
    parts[0].nave, parts[1].nave = 38, 17
    case["mne_parts"] = parts
    case["ops"] = _operators(case, 0.2, 0.8)  # loose 0.2, depth 0.8 in both
    return case


@pytest.mark.parity
@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA", "eLORETA"])
def test_contrast_source_estimate_matches_mne(contrast_case, method):
    """The inverse of the contrast's evoked with its (non-integer) effective nave, as MNE
    applies it to mne.combine_evoked's result."""
    from exgsrc.inverse import apply_inverse

    mne = importlib.import_module("mne")
    parts = contrast_case["mne_parts"]
    minv, inv = contrast_case["ops"]
    diff = mne.combine_evoked(parts, [1, -1])
    assert not float(diff.nave).is_integer()  # 38 * 17 / 55
    ref = mne.minimum_norm.apply_inverse(diff, minv, 1 / 9, method)
    ours_parts = [
        Evoked(p.data, p.times, tuple(p.ch_names), p.nave, f"c{i}", ("eeg",) * len(p.ch_names))
        for i, p in enumerate(parts)
    ]
    ev = combine_evoked(ours_parts, [1, -1])
    stc = apply_inverse(ev.data, inv, 1 / 9, method, nave=ev.nave, ch_names=list(ev.ch_names))
    tol = 1e-4 if method == "eLORETA" else 1e-6
    assert np.max(np.abs(stc.data - ref.data)) / np.max(np.abs(ref.data)) <= tol
    assert stc.to_xarray().attrs["nave"] == pytest.approx(diff.nave)
    if method in ("dSPM", "sLORETA"):  # rounding the nave (as FIF files do) would show
        rounded = apply_inverse(ev.data, inv, 1 / 9, method, nave=round(ev.nave))
        assert np.max(np.abs(rounded.data - ref.data)) / np.max(np.abs(ref.data)) > 10 * tol
