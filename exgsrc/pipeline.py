"""Glue between the Snakemake workflow and the exgsrc library.

Each ``step_*`` function does one workflow step: it reads the step's input
files, calls one or two library functions and writes the outputs through
:mod:`exgsrc.store`. Workflow scripts (``workflow/scripts/*.py``) are one line:
``run_step(snakemake, step_x)``. The ``exgsrc`` command line calls the same
functions.

Failure policy
--------------
With ``on_error: record`` (the default), :func:`run_step` catches a failing
step, writes its traceback to the job log and writes *failed-status* outputs
(netCDF files with ``exgsrc_status = "failed"`` and the reason in
``exgsrc_error``; text outputs with a ``# FAILED`` line). Downstream steps that
read a failed file fail in turn with a message naming it, so the failure
travels to the subject's final outputs while the other subjects and the
cohort steps (which skip and list failed subjects) carry on. With
``on_error: raise`` the exception stops the job as usual.

To retry a failed subject after fixing its data, delete its outputs (or use
``snakemake --forcerun <rule>``).

Condition labels
----------------
``trial_type`` text becomes a BIDS-safe label by :func:`condition_label`:
ASCII letters and digits are kept except ``X``; every other character
(including ``X``) is written as ``X`` followed by the two hex digits of each
of its UTF-8 bytes. ``"auditory/left"`` -> ``"auditoryX2Fleft"``. The mapping
is reversible (:func:`condition_from_label`); the original text is stored in
the ``condition`` attribute of every output.

Nothing heavy is imported at module level (Snakemake imports this module while
building the DAG).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "condition_label",
    "condition_from_label",
    "run_step",
]

log = logging.getLogger("exgsrc")


# ---------------------------------------------------------------------------
# condition labels


def condition_label(text: str) -> str:
    """Path-safe, reversible label of a condition (``trial_type``) name.

    Parameters
    ----------
    text : str
        Condition text as in ``events.tsv``.

    Returns
    -------
    str
        Label made of ASCII letters and digits only.
    """
    if not isinstance(text, str) or text == "":
        raise ValueError(f"condition name must be a non-empty string, got {text!r}")
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum() and ch != "X":
            out.append(ch)
        else:
            out.extend(f"X{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def condition_from_label(label: str) -> str:
    """Inverse of :func:`condition_label`.

    Parameters
    ----------
    label : str

    Returns
    -------
    str
        The original condition text.
    """
    raw = bytearray()
    i = 0
    while i < len(label):
        ch = label[i]
        if ch == "X":
            code = label[i + 1 : i + 3]
            try:
                raw.append(int(code, 16))
            except ValueError:
                raise ValueError(f"invalid condition label {label!r} at position {i}") from None
            i += 3
        else:
            raw.extend(ch.encode("ascii"))
            i += 1
    return raw.decode("utf-8")


# ---------------------------------------------------------------------------
# running a step under Snakemake


class UpstreamFailed(RuntimeError):
    """An input file records a failed step."""


def _flatten(files) -> list[str]:
    out = []
    if isinstance(files, str | os.PathLike):
        return [str(files)]
    for f in files:
        out.extend(_flatten(f))
    return out


def _setup_logging(log_file: str | None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


def _write_failed_outputs(outputs: Sequence[str], error: str, prov: Mapping) -> None:
    from .store import write_failed

    for out in outputs:
        p = Path(out)
        if p.suffix == ".nc":
            write_failed(p, error, prov)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.tmp")
            if p.suffix == ".json":
                tmp.write_text(json.dumps({"exgsrc_status": "failed", "exgsrc_error": error}))
            else:
                tmp.write_text(f"# FAILED: {error}\n")
            os.replace(tmp, p)


class StepContext:
    """What a step function gets: inputs, outputs, params, config, provenance.

    Attributes
    ----------
    input, output, params, wildcards : Snakemake's named lists (or plain objects)
    config : dict
    log_file : str | None
    rule : str
    provenance : dict
        Base provenance attributes (config hash, input checksums, rule, wildcards).
    precision : str
    """

    def __init__(self, snakemake):
        self.input = snakemake.input
        self.output = snakemake.output
        self.params = snakemake.params
        self.wildcards = snakemake.wildcards
        self.config = dict(snakemake.config)
        self.rule = getattr(snakemake, "rule", "step")
        logs = _flatten(getattr(snakemake, "log", []))
        self.log_file = logs[0] if logs else None
        self.precision = self.config.get("precision", "float64")
        self._prov = None

    @property
    def provenance(self) -> dict:
        if self._prov is None:
            from .store import make_provenance

            wc = {k: v for k, v in dict(getattr(self.wildcards, "items", dict)()).items()}
            self._prov = make_provenance(
                self.config, _flatten(self.input), exgsrc_rule=self.rule, wildcards=wc
            )
        return self._prov

    def write(self, ds, path, **attrs):
        """Write a Dataset to ``path`` with provenance and the configured precision."""
        from .store import write_netcdf

        prov = dict(self.provenance)
        prov.update(attrs)
        return write_netcdf(ds, path, prov, precision=self.precision)


def run_step(snakemake, func: Callable[[StepContext], None]) -> None:
    """Run one workflow step under Snakemake with logging and the failure policy.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake injects into scripts.
    func : callable
        ``func(ctx)`` with ``ctx`` a :class:`StepContext`.
    """
    ctx = StepContext(snakemake)
    _setup_logging(ctx.log_file)
    log.info("rule %s, wildcards %s", ctx.rule, dict(ctx.wildcards.items()))
    try:
        func(ctx)
    except Exception as exc:  # noqa: BLE001 - policy decides
        log.error("step failed:\n%s", traceback.format_exc())
        if ctx.config.get("on_error", "record") == "raise":
            raise
        msg = f"{type(exc).__name__}: {exc}"
        try:
            prov = ctx.provenance
        except Exception:  # noqa: BLE001 - inputs may be unreadable
            prov = {}
        _write_failed_outputs(_flatten(ctx.output), msg, prov)
        log.warning("recorded failed outputs: %s", msg)
    else:
        log.info("done")
