"""The workflow's configuration: command-line values, schema validation, cross-key checks.

Runs while Snakemake builds the DAG (``workflow/rules/common.smk``), so it imports no
numerics (PyYAML and jsonschema only).

* :func:`coerce_to_schema`: Snakemake reads ``--config inverse='{snr: 2.0}'`` with
  YAML's base loader, so every nested value arrives as text (``'2.0'``); values are
  converted to the types the schema gives (number, integer, boolean, null, arrays).
* :func:`validation_message`: one line naming the key (``config inverse.snrr: unknown
  key (allowed: ...)``) instead of a dump of the schema.
* :func:`check_relations`: what a schema cannot express (``l_freq < h_freq``, the
  baseline inside the epoch, ...): errors naming the keys, and warnings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

__all__ = [
    "ConfigError",
    "check_relations",
    "check_statistics",
    "coerce_to_schema",
    "load_schema",
    "validate_config",
    "validation_message",
]

_NULL_TEXT = {"null", "none", "~", ""}
_BOOL_TEXT = {"true": True, "false": False, "yes": True, "no": False}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key in one line."""


def load_schema(path) -> dict:
    """Read the workflow's JSON schema (YAML).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
    """
    return yaml.safe_load(Path(path).read_text())


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        return {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _types(schema: Mapping) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _coerce_text(text: str, types: list[str]):
    low = text.strip().lower()
    if "null" in types and low in _NULL_TEXT:
        return None
    if "boolean" in types and low in _BOOL_TEXT:
        return _BOOL_TEXT[low]
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            return (
                int(value) if value.is_integer() and "." not in text and "e" not in low else value
            )
    if "array" in types and low.startswith("["):
        return yaml.safe_load(text)
    return text


def coerce_to_schema(value, schema: Mapping, root: Mapping | None = None):
    """Convert text values to the types the schema asks for, recursively.

    Parameters
    ----------
    value : object
        A config value as Snakemake parsed it (nested values of ``--config`` are text).
    schema : mapping
        The JSON schema of ``value``.
    root : mapping | None
        The whole schema (for ``$ref``); default ``schema``.

    Returns
    -------
    object
        ``value`` with text converted where the schema's type is not string; values
        that do not convert are returned unchanged (validation then names them).
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "oneOf" in schema or "anyOf" in schema:
        for option in schema.get("oneOf", schema.get("anyOf")):
            candidate = coerce_to_schema(value, option, root)
            # evolve() keeps the root schema, so that $refs inside the option resolve
            if jsonschema.Draft202012Validator(root).evolve(schema=option).is_valid(candidate):
                return candidate
        return value
    types = _types(schema)
    if isinstance(value, str) and types and "string" not in types:
        return _coerce_text(value, types)
    if isinstance(value, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            out[key] = coerce_to_schema(item, sub, root) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [coerce_to_schema(item, schema["items"], root) for item in value]
    return value


def validation_message(error: jsonschema.ValidationError) -> str:
    """One line naming the config key and the problem.

    Parameters
    ----------
    error : jsonschema.ValidationError

    Returns
    -------
    str
    """
    error = jsonschema.exceptions.best_match([error])
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        key = ".".join(filter(None, [where, unknown[0] if unknown else ""]))
        return f"config {key}: unknown key (allowed here: {', '.join(allowed)})"
    if error.validator == "enum":
        return f"config {where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        return f"config {where}: {error.instance!r} is not of type {error.validator_value}"
    return f"config {where or '(top level)'}: {error.message}"


def _with_defaults(validator_class):
    set_defaults = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = sub["default"]
        yield from set_defaults(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def validate_config(config: dict, schema: Mapping) -> dict:
    """Coerce, fill defaults and validate a workflow config, in place.

    Parameters
    ----------
    config : dict
        The config Snakemake built (config files, then ``--config``).
    schema : mapping
        The workflow's schema.

    Returns
    -------
    dict
        ``config`` itself, coerced and with every default filled in.

    Raises
    ------
    ConfigError
        The first problem, in one line naming the key.
    """
    coerced = coerce_to_schema(dict(config), schema)
    config.clear()
    config.update(coerced)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(validation_message(errors[0]))
    return config


def check_relations(config: Mapping) -> tuple[list[str], list[str]]:
    """Relations between keys that the schema cannot express.

    Parameters
    ----------
    config : mapping
        A validated config (defaults filled in).

    Returns
    -------
    errors : list of str
        Each names the keys involved.
    warnings : list of str
    """
    errors, warnings = [], []
    flt, ep, cov, inv = config["filter"], config["epochs"], config["covariance"], config["inverse"]
    l_freq, h_freq, new_sfreq = flt["l_freq"], flt["h_freq"], flt["resample"]
    if l_freq is not None and h_freq is not None and not l_freq < h_freq:
        errors.append(f"config filter.l_freq={l_freq} must be below filter.h_freq={h_freq}")
    if new_sfreq is not None and h_freq is not None and not h_freq < new_sfreq / 2:
        errors.append(
            f"config filter.h_freq={h_freq} must be below the Nyquist frequency of "
            f"filter.resample={new_sfreq} ({new_sfreq / 2} Hz)"
        )
    tmin, tmax = ep["tmin"], ep["tmax"]
    if not tmin < tmax:
        errors.append(f"config epochs.tmin={tmin} must be below epochs.tmax={tmax}")
    baseline = ep["baseline"]
    if baseline is not None:
        b0 = tmin if baseline[0] is None else baseline[0]
        b1 = tmax if baseline[1] is None else baseline[1]
        if not (tmin <= b0 < b1 <= tmax):
            errors.append(
                f"config epochs.baseline={baseline} must be a window inside the epoch "
                f"[epochs.tmin, epochs.tmax] = [{tmin}, {tmax}]"
            )
    if cov.get("noise_task") is None:
        c0 = tmin if cov["tmin"] is None else cov["tmin"]
        c1 = tmax if cov["tmax"] is None else cov["tmax"]
        if not (tmin <= c0 < c1 <= tmax):
            errors.append(
                f"config covariance.tmin/tmax=[{cov['tmin']}, {cov['tmax']}] must be a window "
                f"with samples inside the epoch [{tmin}, {tmax}]"
            )
    lambda2 = inv["lambda2"] if inv["lambda2"] is not None else 1.0 / inv["snr"] ** 2
    if not (1e-4 <= lambda2 <= 10) or not math.isfinite(lambda2):
        warnings.append(
            f"config inverse.lambda2={lambda2:g} (from inverse.snr/lambda2) is outside the usual "
            "range 1e-4..10 (SNR 0.3..100): estimates will be nearly unregularised or flat"
        )
    return errors, warnings


def check_statistics(
    config: Mapping, conditions: Mapping[str, str] | None = None, n_subjects: int | None = None
) -> list[str]:
    """Errors of the ``statistics`` tests (one line each, naming the key).

    Parameters
    ----------
    config : mapping
        A validated config (defaults filled in).
    conditions : mapping of label -> condition | None
        The cohort's conditions (path-safe label -> ``trial_type``); None: not checked.
        A test may name a condition by either.
    n_subjects : int | None
        Subjects in the cohort; None: not checked.

    Returns
    -------
    errors : list of str
    """
    errors: list[str] = []
    tests = config.get("statistics") or []
    ep = config["epochs"]
    e0, e1 = ep["tmin"], ep["tmax"]
    methods = list(config["inverse"]["methods"])
    seen: dict[str, int] = {}
    for i, test in enumerate(tests):
        key = f"config statistics[{i}]"
        name = test["name"]
        if name in seen:
            errors.append(f"{key}.name: {name!r} is already the name of statistics[{seen[name]}]")
        seen.setdefault(name, i)
        want = 2 if test["kind"] == "paired" else 1
        conds = list(test["conditions"])
        if len(conds) != want:
            shape = "[A, B] (A minus B)" if want == 2 else "[A]"
            errors.append(
                f"{key}.conditions: kind {test['kind']!r} needs {want} condition(s) {shape}, "
                f"got {conds}"
            )
        elif want == 2 and conds[0] == conds[1]:
            errors.append(f"{key}.conditions: a paired test needs two different conditions")
        if conditions is not None:
            have = set(conditions) | set(conditions.values())
            for c in conds:
                if c not in have:
                    errors.append(
                        f"{key}.conditions: {c!r} is not a condition "
                        f"(have: {', '.join(sorted(conditions.values()))})"
                    )
        if test["method"] not in methods:
            errors.append(
                f"{key}.method: {test['method']!r} is not in inverse.methods "
                f"(have: {', '.join(methods)})"
            )
        t0 = test["tmin"]
        t1 = e1 if test["tmax"] is None else test["tmax"]
        if not (e0 <= t0 < t1 <= e1):
            errors.append(
                f"{key}.tmin/tmax=[{t0}, {test['tmax']}]: the window must be inside the epoch "
                f"[epochs.tmin, epochs.tmax] = [{e0}, {e1}] with tmin < tmax"
            )
        if test["kind"] == "baseline" and ep["baseline"] is not None:
            b1 = e1 if ep["baseline"][1] is None else ep["baseline"][1]
            if b1 > t0:
                errors.append(
                    f"{key}.tmin={t0}: a baseline test's window must start after the end of "
                    f"epochs.baseline ({b1})"
                )
        if test["test"] != "cluster" and test["threshold"] is not None:
            errors.append(
                f"{key}.threshold: only used by test: cluster (this is {test['test']!r})"
            )
        if n_subjects is not None and n_subjects < 3:
            errors.append(
                f"{key}: a cohort test needs at least 3 subjects, the cohort has {n_subjects}"
            )
    return errors
