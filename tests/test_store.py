"""Tests of exgsrc.store: atomic netCDF writes with provenance and loaders."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import xarray as xr

from exgsrc import store


def _ds():
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"gain": (("channel", "source"), rng.standard_normal((4, 5)), {"units": "V/(A m)"})},
        coords={"channel": ["Fp1", "Fp2", "<b>Cz</b>", "Oz"], "x": ("source", np.arange(5.0))},
        attrs={"method": "test", "params": {"a": 1, "b": [1, "x"]}, "flag": True, "none": None},
    )


def test_write_roundtrip_attrs_and_provenance(tmp_path):
    inp = tmp_path / "input.bin"
    inp.write_bytes(b"abc" * 1000)
    prov = store.make_provenance({"k": 1}, [inp], subject="01")
    out = store.write_netcdf(_ds(), tmp_path / "sub" / "out.nc", prov)
    assert out.exists()
    # readable by plain xarray
    with xr.open_dataset(out) as raw:
        assert raw["gain"].dims == ("channel", "source")
        assert raw["gain"].encoding["zlib"] is True
        assert raw["gain"].encoding["complevel"] == 4
        assert list(raw["channel"].values) == ["Fp1", "Fp2", "<b>Cz</b>", "Oz"]
    ds = store.open_dataset(out)
    np.testing.assert_array_equal(ds["gain"].values, _ds()["gain"].values)
    assert ds["gain"].attrs["units"] == "V/(A m)"
    from exgsrc import __version__

    assert ds.attrs["exgsrc_version"] == __version__
    assert ds.attrs["inputs"] == [
        {"path": str(inp), "sha256": hashlib.sha256(b"abc" * 1000).hexdigest()}
    ]
    expected_cfg = hashlib.sha256(
        json.dumps({"k": 1}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert ds.attrs["config_sha256"] == expected_cfg
    assert ds.attrs["created"].endswith("+00:00")
    assert ds.attrs["params"] == {"a": 1, "b": [1, "x"]}
    assert ds.attrs["flag"] == 1
    assert ds.attrs["subject"] == "01"
    assert ds.attrs["exgsrc_status"] == "ok"
    assert not store.is_failed(out)


def test_float32_precision(tmp_path):
    out = store.write_netcdf(_ds(), tmp_path / "f.nc", precision="float32")
    with xr.open_dataset(out) as raw:
        assert raw["gain"].dtype == np.float32
        assert raw["x"].dtype == np.float64  # coordinates keep full precision
    with pytest.raises(ValueError, match="precision"):
        store.write_netcdf(_ds(), tmp_path / "g.nc", precision="float16")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "a.nc"
    store.write_netcdf(_ds(), path)
    before = path.read_bytes()
    bad = _ds()
    bad.attrs["obj"] = object()  # not serialisable -> fails before anything is renamed
    with pytest.raises(TypeError):
        store.write_netcdf(bad, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.nc"]


def test_failed_placeholder(tmp_path):
    path = store.write_failed(tmp_path / "x_fwd.nc", "ValueError: channel 'Cz' has no position")
    assert store.is_failed(path)
    ds = store.open_dataset(path)
    assert "Cz" in ds.attrs["exgsrc_error"]
    with pytest.raises(ValueError, match="failed step"):
        store.load_forward(path)


def test_open_missing_names_file(tmp_path):
    with pytest.raises(ValueError, match="nope.nc"):
        store.open_dataset(tmp_path / "nope.nc")


def _small_problem():
    from exgsrc.covariance import NoiseCov
    from exgsrc.forward import SphereModel, make_sphere_forward_free
    from exgsrc.simulate import electrode_directions, standard_channel_names
    from exgsrc.source_space import ico_source_space

    names = standard_channel_names(16)
    elec = electrode_directions(names) * 0.09
    sphere = SphereModel(radii=(0.078, 0.083, 0.09), conductivities=(0.33, 0.0042, 0.33))
    src = ico_source_space(1, 0.06)
    fwd = make_sphere_forward_free(elec, src, sphere, ch_names=names)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 40)) * 1e-6
    cov = NoiseCov(a @ a.T / 40, tuple(names), nfree=39, method="empirical")
    return fwd, cov


@pytest.mark.parametrize("loose", [0.0, 0.2, 1.0])
def test_inverse_roundtrip(tmp_path, loose):
    import dataclasses

    from exgsrc.inverse import make_inverse_operator

    fwd, cov = _small_problem()
    inv = make_inverse_operator(fwd, cov, loose=loose, depth=0.8, fixed=loose == 0.0)
    path = store.write_netcdf(inv.to_xarray(), tmp_path / "inv.nc")
    back = store.load_inverse(path)
    for f in dataclasses.fields(inv):
        a, b = getattr(inv, f.name), getattr(back, f.name)
        if f.name == "meta":
            continue
        if f.name == "src":
            np.testing.assert_array_equal(a.pos, b.pos)
            np.testing.assert_array_equal(a.nn, b.nn)
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name


def test_forward_cov_loaders(tmp_path):
    fwd, cov = _small_problem()
    f = store.load_forward(store.write_netcdf(fwd.to_xarray(), tmp_path / "fwd.nc"))
    np.testing.assert_array_equal(f.gain, fwd.gain)
    assert f.ch_names == fwd.ch_names
    c = store.load_cov(store.write_netcdf(cov.to_xarray(), tmp_path / "cov.nc"))
    np.testing.assert_array_equal(c.data, cov.data)
    assert c.ch_names == cov.ch_names


def test_write_text_atomic_complete_or_untouched(tmp_path):
    path = tmp_path / "sub" / "table.tsv"
    assert store.write_text_atomic(path, "a\tb\n1\t2\n") == path
    assert path.read_text(encoding="utf-8") == "a\tb\n1\t2\n"
    store.write_text_atomic(path, "µV\n")  # overwrite, UTF-8
    assert path.read_text(encoding="utf-8") == "µV\n"
    # a write that fails half-way leaves the previous file and no temporary behind
    with pytest.raises(TypeError):
        store.write_text_atomic(path, b"not text")
    assert path.read_text(encoding="utf-8") == "µV\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.tsv"]


def test_read_cohort_estimates_sets_aside_failed_and_mismatched_subjects(tmp_path):
    def stc(name, n_src=4, n_t=5, shift=0.0):
        ds = xr.Dataset(
            {"stc": (("source", "time"), np.full((n_src, n_t), shift))},
            coords={
                "time": np.arange(n_t) / 100.0,
                **{c: ("source", np.arange(n_src) + shift) for c in "xyz"},
            },
        )
        store.write_netcdf(ds, tmp_path / name)
        return tmp_path / name

    paths = {
        "01": [stc("a1.nc", shift=1.0), stc("b1.nc", shift=1.0)],
        "02": [stc("a2.nc", shift=3.0), stc("b2.nc", shift=3.0)],
        "03": [stc("a3.nc"), tmp_path / "b3.nc"],
        "04": [stc("a4.nc", n_src=3), stc("b4.nc", n_src=3)],
    }
    store.write_failed_outputs([tmp_path / "b3.nc"], "ValueError: no events")
    usable, left_out = store.read_cohort_estimates(paths)
    assert list(usable) == ["01", "02"] and [len(v) for v in usable.values()] == [2, 2]
    assert "b3.nc" in left_out["03"] and "no events" in left_out["03"]
    assert "(3, 5) differs from (4, 5)" in left_out["04"]
    pos = store.mean_source_positions([usable["01"][0], usable["02"][0]])
    np.testing.assert_array_equal(pos[:, 0], np.arange(4) + 2.0)
