"""Running one workflow step under Snakemake: context, logging and the failure policy.

Failure policy
--------------
With ``on_error: record`` (the default), :func:`run_step` catches a failing step,
writes its traceback to the job log and writes *failed-status* outputs
(:func:`exgsrc.store.write_failed_outputs`). Downstream steps that read a failed
file fail in turn with a message naming it (:class:`exgsrc.store.UpstreamFailed`),
so the failure travels to the subject's final outputs while the other subjects and
the cohort steps (which skip and list failed subjects) carry on. With
``on_error: raise`` the exception stops the job as usual.

Jobs of several outputs
-----------------------
A rule may make several independent outputs in one job (all methods' source
estimates of one condition, all evoked responses of one subject), so that tiny
steps do not each pay a Python start-up. Such a step declares its parts with
:meth:`StepContext.set_parts` (output -> the wildcards that output had when it was
a job of its own) and computes each part under :meth:`StepContext.part`: a part
that fails writes its failed-status placeholder and the others carry on, exactly
as separate jobs would; every file gets the provenance (``exgsrc_rule``,
``wildcards``) it had as a job of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .._system import thread_budget
from ..runs import clear_failure, record_failure
from ..store import make_provenance, write_failed_outputs, write_netcdf

__all__ = ["StepContext", "flatten", "progress_logger", "run_step"]

log = logging.getLogger("exgsrc")


def flatten(files) -> list[str]:
    """Paths of a (nested) Snakemake file list, as strings.

    Parameters
    ----------
    files : str | path-like | iterable | None

    Returns
    -------
    list of str
    """
    if files is None:
        return []
    if isinstance(files, str | os.PathLike):
        return [str(files)]
    out = []
    for f in files:
        out.extend(flatten(f))
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


class StepContext:
    """What a step function gets: inputs, outputs, params, config, provenance.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake injects into scripts (or any object with the same
        attributes: ``input``, ``output``, ``params``, ``wildcards``, ``config``,
        ``rule``, ``log``).

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
        logs = flatten(getattr(snakemake, "log", []))
        self.log_file = logs[0] if logs else None
        self.precision = self.config.get("precision", "float64")
        self._prov = None
        self._parts: dict[str, dict] = {}
        self.failures: list[tuple[list[str], str]] = []

    @property
    def provenance(self) -> dict:
        """Provenance attributes of this job's outputs (computed once)."""
        if self._prov is None:
            wc = dict(getattr(self.wildcards, "items", dict)())
            self._prov = make_provenance(
                self.config, flatten(self.input), exgsrc_rule=self.rule, wildcards=wc
            )
        return self._prov

    def set_parts(self, parts: Mapping[str, Mapping[str, str]]) -> None:
        """Declare the independent outputs of a job that makes several.

        Call it first in the step, before anything that may fail: the failure
        policy then writes each output's placeholder with that output's provenance.

        Parameters
        ----------
        parts : mapping
            Output path -> the wildcards that only this output has (e.g.
            ``{"method": "dSPM"}``), added to the job's wildcards in the output's
            ``wildcards`` attribute.
        """
        self._parts = {str(k): dict(v) for k, v in parts.items()}

    def provenance_of(self, path) -> dict:
        """Provenance attributes of one output (:meth:`provenance` plus its own wildcards).

        Parameters
        ----------
        path : str | Path
            One of the job's outputs.

        Returns
        -------
        dict
        """
        extra = self._parts.get(str(path))
        if not extra:
            return self.provenance
        prov = dict(self.provenance)
        prov["wildcards"] = {**prov["wildcards"], **extra}
        return prov

    @contextlib.contextmanager
    def part(self, *outputs) -> Iterator[None]:
        """Compute some of the job's outputs under the failure policy of a job of their own.

        With ``on_error: record``, an exception inside the block is logged, the
        block's ``outputs`` get failed-status placeholders and the failure is kept
        for the job's failure note (:func:`run_step`); the step goes on with its
        next part. With ``on_error: raise`` the exception propagates.

        Parameters
        ----------
        *outputs : str | Path
            The outputs written inside the block.
        """
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - policy decides
            log.error("part %s failed:\n%s", ", ".join(map(str, outputs)), traceback.format_exc())
            if self.config.get("on_error", "record") == "raise":
                raise
            msg = f"{type(exc).__name__}: {exc}"
            _write_failed(self, [str(o) for o in outputs], msg)
            self.failures.append(([str(o) for o in outputs], msg))
            log.warning("recorded failed outputs %s: %s", ", ".join(map(str, outputs)), msg)

    def write(self, ds, path, *, model: bool = False, **attrs):
        """Write a Dataset atomically with this job's provenance and precision.

        Parameters
        ----------
        ds : xarray.Dataset
        path : str | Path
            One of the job's outputs.
        model : bool
            A model file (montage, head model, source space, forward, noise
            covariance, inverse operator): always float64, whatever the
            configured ``precision``. Rounding them to float32 would make a
            covariance indefinite (relative error ~1e-7 against eigenvalues that
            span 1e-10) and degrade every estimate computed from them.
        **attrs
            Extra file attributes (override the provenance ones).

        Returns
        -------
        Path
        """
        prov = dict(self.provenance_of(path))
        prov.update(attrs)
        precision = "float64" if model else self.precision
        return write_netcdf(ds, path, prov, precision=precision)


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
    log.info(
        "rule %s, wildcards %s, threads %s (numerics use %d)",
        ctx.rule,
        dict(ctx.wildcards.items()),
        getattr(snakemake, "threads", 1),
        thread_budget(),
    )
    try:
        func(ctx)
    except Exception as exc:  # noqa: BLE001 - policy decides
        log.error("step failed:\n%s", traceback.format_exc())
        if ctx.config.get("on_error", "record") == "raise":
            raise
        msg = f"{type(exc).__name__}: {exc}"
        _write_failed(ctx, flatten(ctx.output), msg)
        if ctx.log_file:
            record_failure(ctx.log_file, ctx.rule, flatten(ctx.output), msg)
        log.warning("recorded failed outputs: %s", msg)
    else:
        if ctx.failures:
            outputs = [o for outs, _ in ctx.failures for o in outs]
            msg = "; ".join(dict.fromkeys(m for _, m in ctx.failures))
            if ctx.log_file:
                record_failure(ctx.log_file, ctx.rule, outputs, msg)
            log.info("done, %d of %d outputs failed", len(outputs), len(flatten(ctx.output)))
        else:
            if ctx.log_file:
                clear_failure(ctx.log_file)
            log.info("done")


def _write_failed(ctx: StepContext, outputs: list[str], msg: str) -> None:
    """Failed-status placeholders of ``outputs``, each with its own provenance if possible."""
    try:
        ctx.provenance  # noqa: B018 - hashes the inputs once
    except Exception:  # noqa: BLE001 - inputs may be unreadable
        write_failed_outputs(outputs, msg, {})
        return
    for out in outputs:
        write_failed_outputs([out], msg, ctx.provenance_of(out))


def progress_logger(what: str, every: float = 0.1):
    """A ``progress(part, done, total)`` callback that logs about every 10 %.

    Parameters
    ----------
    what : str
        Prefix of the log lines.
    every : float
        Fraction of the total between two lines.

    Returns
    -------
    callable
    """
    state: dict = {}

    def progress(part: str, done: int, total: int) -> None:
        nxt = state.get(part, 0.0)
        if done >= total or done / total >= nxt:
            log.info(
                "%s %s: %d / %d sources (%.0f %%)", what, part, done, total, 100 * done / total
            )
            state[part] = done / total + every

    return progress
