"""Standard 10-X montages on a sphere and electrodes.tsv reading."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from exgsrc.io import BidsError, Montage, read_electrodes, standard_montage, standard_positions

mne = importlib.import_module("mne")


def _angle(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1, 1)))


def test_standard_matches_eeglab_positions(shared_bids_root):
    """EEGLAB's idealised spherical 10-20 positions (in the shared dataset) are an external
    reference: ours lie within a few degrees of them."""
    d = shared_bids_root / "sub-01" / "eeg"
    ref = read_electrodes(
        d / "sub-01_space-CapTrak_electrodes.tsv", d / "sub-01_space-CapTrak_coordsystem.json"
    )
    ours = standard_montage("standard_1010", ref.ch_names, radius=0.095)
    assert ours.ch_names == ref.ch_names  # FPz matched case-insensitively to Fpz
    ang = _angle(ours.pos, ref.pos)
    assert np.median(ang) < 3.0 and ang.max() < 7.0
    np.testing.assert_allclose(np.linalg.norm(ours.pos, axis=1), 0.095)


def test_label_sets_match_mne():
    """Same site names as MNE's 10-20/10-05 templates (names are definitions, not positions)."""
    # MNE's "standard_1020" template holds the 10-10 sites
    for ours_name, mne_name, extra in [
        ("standard_1005", "standard_1005", set()),
        ("standard_1010", "standard_1020", set()),
    ]:
        with _nullctx():
            m = mne.channels.make_standard_montage(mne_name)
        theirs = set(m.ch_names)
        ours = set(standard_positions(ours_name))
        missing = theirs - ours - extra
        assert not missing, missing


class _nullctx:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *a):
        self._w.__exit__(*a)


def test_geometry_of_the_definition():
    p = standard_positions("standard_1005", radius=1.0)
    np.testing.assert_allclose(p["Cz"], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(p["Fpz"], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(p["T7"], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(p["Oz"], [0, -1, 0], atol=1e-12)
    # midline every 10 % = 22.5 degrees
    assert _angle(p["Fz"], p["Cz"]) == pytest.approx(45.0)
    assert _angle(p["AFFz"], p["Fz"]) == pytest.approx(11.25)
    # circumference sites on the equator at 18 degree azimuth steps
    for name, az in [("Fp1", 18), ("F7", 54), ("T7", 90), ("P7", 126), ("O1", 162)]:
        assert p[name][2] == pytest.approx(0.0, abs=1e-12)
        assert _angle(p[name], p["Fpz"]) == pytest.approx(az)
    # row sites equally spaced between the midline and circumference sites
    steps = [
        _angle(p[a], p[b]) for a, b in [("Fz", "F1"), ("F1", "F3"), ("F3", "F5"), ("F5", "F7")]
    ]
    np.testing.assert_allclose(steps, steps[0], rtol=1e-10)
    assert _angle(p["Fz"], p["F1h"]) == pytest.approx(_angle(p["F1h"], p["F1"]))
    assert _angle(p["F7"], p["F9h"]) == pytest.approx(_angle(p["F9h"], p["F9"]))
    # C row = coronal great circle: C3 halfway between Cz and T7
    assert _angle(p["C3"], p["Cz"]) == pytest.approx(45.0)
    # left/right symmetry and aliases
    np.testing.assert_allclose(p["F4"] * [-1, 1, 1], p["F3"], atol=1e-12)
    np.testing.assert_array_equal(p["T3"], p["T7"])
    assert p["F9"][2] < 0 and p["Iz"][2] < 0
    assert set(standard_positions("standard_1020")) < set(standard_positions("standard_1010"))


def test_standard_montage_missing_and_errors():
    m = standard_montage("standard_1020", ["Cz", "cz3", "FC1"], radius=0.09)
    assert m.ch_names == ("Cz",) and m.meta["missing"] == ["cz3", "FC1"]
    assert "cz3" in m.meta["warnings"][0]
    with pytest.raises(ValueError, match="standard montage 'easycap'"):
        standard_montage("easycap")


def test_montage_type_and_xarray(tmp_path):
    m = standard_montage("standard_1010", ["Fz", "Cz", "Pz"])
    ds = m.to_xarray()
    assert ds["pos"].attrs["units"] == "m" and list(ds["channel"].values) == ["Fz", "Cz", "Pz"]
    back = Montage.from_xarray(ds)
    np.testing.assert_array_equal(back.pos, m.pos)
    with pytest.raises(ValueError, match="no position for"):
        m.get_positions(["Oz"])
    with pytest.raises(ValueError, match="duplicate"):
        Montage(("A", "A"), np.zeros((2, 3)))


@pytest.mark.parametrize("unit,fac", [("m", 1.0), ("cm", 100.0), ("mm", 1000.0)])
def test_electrodes_units(tmp_path, unit, fac):
    p = standard_positions("standard_1020", 0.09)
    names = ["Fz", "Cz", "Pz", "C3", "C4", "Oz"]
    lines = (
        ["name\tx\ty\tz"]
        + ["\t".join([n] + [repr(float(v) * fac) for v in p[n]]) for n in names]
        + ["GND\tn/a\tn/a\tn/a"]
    )
    (tmp_path / "e.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "c.json").write_text(
        json.dumps({"EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": unit})
    )
    m = read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")
    np.testing.assert_allclose(m.get_positions(names), [p[n] for n in names], rtol=1e-12)
    assert m.meta["missing"] == ["GND"] and m.coord_frame == "CapTrak"
    (tmp_path / "c.json").write_text('{"EEGCoordinateSystem": "CapTrak"}')
    with pytest.raises(BidsError, match="c.json: required key 'EEGCoordinateUnits' missing"):
        read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")


# ----------------------------------------------------------------------------------
# EGI HydroCel nets (shipped tables)

_NETS = {"GSN-HydroCel-129": 129, "GSN-HydroCel-256": 256}


@pytest.mark.parametrize("net, n", list(_NETS.items()))
def test_hydrocel_nets_shipped(net, n):
    m = standard_montage(net)
    assert m.n_channels == n and m.coord_frame == "head"
    assert m.ch_names[:3] == ("E1", "E2", "E3")
    assert m.pos.shape == (n, 3) and np.all(np.isfinite(m.pos))
    fid = m.meta["fiducials"]
    # a fiducial-defined RAS head frame: LPA/RPA on the x axis, the nasion on +y
    np.testing.assert_allclose(fid["LPA"][1:], 0, atol=1e-12)
    np.testing.assert_allclose(fid["RPA"][1:], 0, atol=1e-12)
    assert fid["RPA"][0] > 0.06 and fid["LPA"][0] < -0.06
    np.testing.assert_allclose(fid["Nz"][[0, 2]], 0, atol=2e-9)  # MNE leaves ~1 nm
    assert fid["Nz"][1] > 0.09
    # head-sized, with cheek/jaw (low front) and neck (low back) electrodes
    r = np.linalg.norm(m.pos - [0, 0, 0.035], axis=1)
    assert 0.07 < r.min() and r.max() < 0.14
    assert np.sum((m.pos[:, 2] < 0) & (m.pos[:, 1] > 0)) >= 14  # below the fiducial plane
    assert np.sum((m.pos[:, 2] < 0) & (m.pos[:, 1] < 0)) >= 9
    assert m.pos[:, 2].min() < -0.05
    # names are matched case-insensitively; the net name too
    sub = standard_montage(net.lower(), ["e2", "E1", "nope"])
    assert sub.ch_names == ("e2", "E1") and sub.meta["missing"] == ["nope"]
    np.testing.assert_array_equal(sub.pos, m.pos[[1, 0]])
    with pytest.raises(ValueError, match="radius applies to the spherical 10-X systems only"):
        standard_montage(net, radius=0.09)


def test_hydrocel_129_reference_aliases():
    m = standard_montage("GSN-HydroCel-129", ["E129", "VREF", "Cz"])
    assert m.ch_names == ("E129", "VREF", "Cz") and m.meta["missing"] == []
    np.testing.assert_array_equal(m.pos, np.repeat(m.pos[:1], 3, axis=0))
    assert m.pos[0, 2] > 0.12  # the vertex
    assert standard_montage("GSN-HydroCel-256", ["E257"]).meta["missing"] == ["E257"]


def test_hydrocel_without_mne(tmp_path):
    """The nets load at run time with MNE-Python unimportable."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    code = (
        "import sys; sys.modules['mne'] = None\n"
        "from exgsrc.io import standard_montage\n"
        "import exgsrc.io.montage as m; print(m.__file__)\n"
        "print(standard_montage('GSN-HydroCel-256').n_channels)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    where, n = out.stdout.split()
    assert Path(where).resolve() == Path(__file__).resolve().parents[1] / "exgsrc/io/montage.py"
    assert n == "256"


@pytest.mark.parity
@pytest.mark.parametrize("net", list(_NETS))
def test_hydrocel_positions_equal_mne_head_frame(net):
    """The shipped table holds MNE's template in MNE's head frame, to the last bit."""
    with _nullctx():
        montage = mne.channels.make_standard_montage(net)
        info = mne.create_info(montage.ch_names, 1000.0, "eeg")
        info.set_montage(montage)
    ours = standard_montage(net)
    assert ours.ch_names == tuple(info.ch_names)
    ref = np.array([ch["loc"][:3] for ch in info["chs"]])
    np.testing.assert_array_equal(ours.pos, ref)
    cardinal = {d["ident"]: d["r"] for d in info["dig"] if d["kind"] == 1}  # FIFFV_POINT_CARDINAL
    fid = ours.meta["fiducials"]
    np.testing.assert_array_equal(fid["LPA"], cardinal[1])
    np.testing.assert_array_equal(fid["Nz"], cardinal[2])
    np.testing.assert_array_equal(fid["RPA"], cardinal[3])


@pytest.mark.parity
def test_hydrocel_generator_reproduces_tables():
    """tools/make_hydrocel_positions.py --check: the committed tables are what it writes."""
    import runpy
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "make_hydrocel_positions.py"
    namespace = runpy.run_path(str(tool))
    assert namespace["main"](["--check"]) == 0


# ----------------------------------------------------------------------------------
# coordinate frames of electrodes.tsv (converted to the RAS head frame)

_FID_RAS = {"NAS": [0.0, 0.095, -0.01], "LPA": [-0.08, 0.0, -0.03], "RPA": [0.08, 0.0, -0.03]}


def _write_frame(tmp_path, frame, to_frame, unit="m", fac=1.0, landmarks=True, lm_unit="m"):
    """electrodes.tsv + coordsystem.json of a 10-10 subset expressed in another frame."""
    p = standard_positions("standard_1020", 0.09)
    names = ["Fz", "Cz", "Pz", "C3", "C4", "Oz", "T7", "T8"]
    rows = ["name\tx\ty\tz"]
    rows += ["\t".join([n] + [repr(float(v) * fac) for v in to_frame(p[n])]) for n in names]
    (tmp_path / "e.tsv").write_text("\n".join(rows + ["GND\tn/a\tn/a\tn/a"]) + "\n")
    cs = {"EEGCoordinateSystem": frame, "EEGCoordinateUnits": unit}
    if landmarks:
        lfac = {"m": 1.0, "mm": 1000.0}[lm_unit]
        cs["AnatomicalLandmarkCoordinates"] = {
            k: [v * lfac for v in to_frame(np.array(x))] for k, x in _FID_RAS.items()
        }
        cs.update(
            AnatomicalLandmarkCoordinateSystem=frame, AnatomicalLandmarkCoordinateUnits=lm_unit
        )
    (tmp_path / "c.json").write_text(json.dumps(cs))
    return names, np.array([p[n] for n in names])


def test_electrodes_captrak_kept_bit_for_bit(shared_bids_root):
    d = shared_bids_root / "sub-01" / "eeg"
    tsv, cs = (
        d / "sub-01_space-CapTrak_electrodes.tsv",
        d / "sub-01_space-CapTrak_coordsystem.json",
    )
    m = read_electrodes(tsv, cs)
    rows = [ln.split("\t") for ln in tsv.read_text().splitlines()[1:]]
    exact = {r[0]: [float(v) for v in r[1:4]] for r in rows if "n/a" not in r}
    np.testing.assert_array_equal(m.pos, [exact[n] for n in m.ch_names])
    lm = json.loads(cs.read_text())["AnatomicalLandmarkCoordinates"]
    assert set(m.meta["fiducials"]) == set(lm)
    for k, v in lm.items():
        np.testing.assert_array_equal(m.meta["fiducials"][k], v)
    assert m.coord_frame == m.meta["coord_frame_original"] == "CapTrak"
    np.testing.assert_array_equal(m.meta["coord_transform"], np.eye(4))


@pytest.mark.parametrize("frame", ["EEGLAB", "CTF", "EEGLAB-HJ", "4DBti", "KitYokogawa"])
def test_electrodes_als_frames_by_axes(tmp_path, frame):
    """ALS positions (x' = y, y' = -x) in mm, no landmarks: the RAS positions, exactly."""
    names, ras = _write_frame(
        tmp_path, frame, lambda v: [v[1], -v[0], v[2]], unit="mm", fac=1000.0, landmarks=False
    )
    m = read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")
    np.testing.assert_allclose(m.get_positions(names), ras, rtol=1e-15, atol=1e-17)
    assert m.coord_frame == f"{frame}->RAS (axes)" and m.meta["coord_frame_original"] == frame
    np.testing.assert_array_equal(
        m.meta["coord_transform"][:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    )
    assert m.meta["missing"] == ["GND"] and m.meta["warnings"] == [
        "%s: no position for ['GND']" % (tmp_path / "e.tsv")
    ]


def test_electrodes_landmarks_in_their_own_units(tmp_path):
    """EEGLAB positions in cm, landmarks in mm: the landmarks' head frame."""
    from exgsrc.io.coords import apply_transform, landmark_transform

    names, ras = _write_frame(
        tmp_path, "EEGLAB", lambda v: [v[1], -v[0], v[2]], unit="cm", fac=100.0, lm_unit="mm"
    )
    m = read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")
    head = landmark_transform(*(_FID_RAS[k] for k in ("NAS", "LPA", "RPA")))
    np.testing.assert_allclose(m.get_positions(names), apply_transform(head, ras), atol=1e-15)
    assert m.coord_frame == "EEGLAB->RAS (landmarks)"
    fid = m.meta["fiducials"]
    np.testing.assert_allclose(fid["LPA"][1:], 0, atol=1e-15)
    np.testing.assert_allclose(fid["NAS"][[0, 2]], 0, atol=1e-15)


def test_electrodes_unknown_or_missing_frame_is_a_warning(tmp_path):
    names, ras = _write_frame(tmp_path, "Bogus", lambda v: v, landmarks=False)
    m = read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")
    np.testing.assert_array_equal(m.get_positions(names), ras)
    assert m.coord_frame == "unknown (as given)" and m.meta["coord_frame_original"] == "Bogus"
    assert m.meta["warnings"][-1] == (
        f"{tmp_path / 'c.json'}: EEGCoordinateSystem 'Bogus' is not a coordinate system exgsrc "
        "knows and no NAS/LPA/RPA landmarks define the head; positions kept as given (taken as "
        "RAS: x right, y anterior, z up)"
    )
    m = read_electrodes(tmp_path / "e.tsv")
    assert m.meta["warnings"][-1] == (
        f"{tmp_path / 'e.tsv'}: no EEGCoordinateSystem is given and no NAS/LPA/RPA landmarks "
        "define the head; positions kept as given (taken as RAS: x right, y anterior, z up)"
    )


def test_electrodes_fix_units_rescales_landmarks_too(tmp_path):
    """A ~90 mm cloud declared as m, landmarks in the same declared unit: both rescaled."""
    from exgsrc.io.coords import apply_transform, landmark_transform

    names, ras = _write_frame(tmp_path, "CTF", lambda v: [1000 * v[1], -1000 * v[0], 1000 * v[2]])
    with pytest.raises(BidsError, match="look like 'mm'"):
        read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")
    m = read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json", fix_units=True)
    head = landmark_transform(*(_FID_RAS[k] for k in ("NAS", "LPA", "RPA")))
    np.testing.assert_allclose(m.get_positions(names), apply_transform(head, ras), atol=1e-15)
    assert m.coord_frame == "CTF->RAS (landmarks)"


@pytest.mark.parity
def test_electrodes_landmark_frame_matches_mne(tmp_path):
    """Digitised positions in a tilted, shifted ALS frame: MNE's head frame from the fiducials."""
    ang = np.deg2rad(12.0)
    rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])

    def to_frame(v):
        return (rot @ [v[1], -v[0], v[2]] + [0.004, -0.003, 0.02]).tolist()

    names, _ = _write_frame(tmp_path, "EEGLAB", to_frame)
    m = read_electrodes(tmp_path / "e.tsv", tmp_path / "c.json")
    lm = json.loads((tmp_path / "c.json").read_text())["AnatomicalLandmarkCoordinates"]
    rows = [ln.split("\t") for ln in (tmp_path / "e.tsv").read_text().splitlines()[1:]]
    ch_pos = {r[0]: np.array([float(v) for v in r[1:]]) for r in rows if r[0] in names}
    with _nullctx():
        dig = mne.channels.make_dig_montage(
            ch_pos=ch_pos,
            nasion=lm["NAS"],
            lpa=lm["LPA"],
            rpa=lm["RPA"],
            coord_frame="unknown",
        )
        head = mne.channels.montage.transform_to_head(dig).get_positions()
    assert head["coord_frame"] == "head" and m.coord_frame == "EEGLAB->RAS (landmarks)"
    np.testing.assert_allclose(
        m.get_positions(names), [head["ch_pos"][n] for n in names], atol=1e-15
    )
    for ours, theirs in (("NAS", "nasion"), ("LPA", "lpa"), ("RPA", "rpa")):
        np.testing.assert_allclose(m.meta["fiducials"][ours], head[theirs], atol=1e-15)
