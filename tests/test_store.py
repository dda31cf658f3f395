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
