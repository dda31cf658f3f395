"""exgsrc.config: command-line values coerced to the schema, one-line errors, cross-key checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exgsrc.config import (
    ConfigError,
    check_relations,
    coerce_to_schema,
    load_schema,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def _config(**overrides):
    """The shipped config.yaml with Snakemake's --config text values merged in."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def test_command_line_text_is_coerced_to_the_schema_types():
    # Snakemake reads `--config inverse='{snr: 2.0}'` with YAML's base loader: all text
    cfg = validate_config(
        _config(
            inverse={"snr": "2.0", "lambda2": "null", "methods": ["dSPM"]},
            epochs={"tmin": "-0.1", "baseline": ["null", "0"]},
            reject={"eeg": "1e-4"},
            resolution={"enabled": "false"},
        ),
        SCHEMA,
    )
    assert cfg["inverse"]["snr"] == 2.0 and cfg["inverse"]["lambda2"] is None
    assert cfg["epochs"]["tmin"] == -0.1 and cfg["epochs"]["baseline"] == [None, 0]
    assert cfg["reject"]["eeg"] == 1e-4 and cfg["resolution"]["enabled"] is False


def test_text_that_is_a_string_in_the_schema_stays_text():
    assert coerce_to_schema({"task": "01"}, SCHEMA)["task"] == "01"
    assert coerce_to_schema({"subjects": ["01", "02"]}, SCHEMA)["subjects"] == ["01", "02"]


def test_unknown_key_is_one_line_naming_it():
    with pytest.raises(ConfigError) as err:
        validate_config(_config(inverse={"snrr": "2"}), SCHEMA)
    msg = str(err.value)
    assert msg.startswith("config inverse.snrr: unknown key") and "\n" not in msg
    assert "snr" in msg  # the allowed keys are listed


def test_wrong_value_names_the_key():
    with pytest.raises(ConfigError, match=r"^config inverse.snr: 'abc' is not of type"):
        validate_config(_config(inverse={"snr": "abc"}), SCHEMA)
    with pytest.raises(ConfigError, match=r"^config head_model.electrodes: 'maybe' is not one of"):
        validate_config(_config(head_model={"electrodes": "maybe"}), SCHEMA)


def test_defaults_fill_missing_sections():
    cfg = validate_config({}, SCHEMA)
    assert cfg["head_model"]["electrodes"] == "project"
    assert cfg["epochs"]["reject_by_annotation"] == "bad"


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (
            {"filter": {"l_freq": 30.0, "h_freq": 20.0}},
            "filter.l_freq=30.0 must be below filter.h_freq",
        ),
        (
            {"filter": {"resample": 50.0, "h_freq": 40.0}},
            "filter.h_freq=40.0 must be below the Nyquist",
        ),
        ({"epochs": {"tmin": 0.3, "tmax": 0.2}}, "epochs.tmin=0.3 must be below epochs.tmax"),
        ({"epochs": {"baseline": [-0.5, 0.0]}}, "epochs.baseline=[-0.5, 0.0] must be a window"),
        ({"covariance": {"tmin": 0.6, "tmax": 0.7}}, "covariance.tmin/tmax=[0.6, 0.7]"),
    ],
)
def test_relations_between_keys(overrides, keys):
    errors, _ = check_relations(validate_config(_config(**overrides), SCHEMA))
    assert any(keys in e for e in errors), errors


def test_shipped_config_has_no_relation_problem():
    assert check_relations(validate_config(_config(), SCHEMA)) == ([], [])


def test_absurd_lambda2_is_a_warning():
    errors, warnings = check_relations(validate_config(_config(inverse={"lambda2": 1e30}), SCHEMA))
    assert errors == [] and "inverse.lambda2=1e+30" in warnings[0]
