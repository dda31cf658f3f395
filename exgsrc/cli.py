"""``exgsrc`` command line: single steps outside Snakemake.

Commands
--------
``exgsrc demo-bids OUT [--subjects N] [--conditions a,b] [--seed S] [--montage NET]``
    Write the simulated demo cohort as a BIDS dataset.
``exgsrc info FILE.nc``
    Print a netCDF output's dimensions, variables and provenance.
``exgsrc failed RESULTS``
    List failed-status outputs under a results folder (one per line, with the
    reason) so they can be deleted and rerun: ``exgsrc failed results -q | xargs rm``.
``exgsrc retry RESULTS``
    Remove the failed-status outputs that steps recorded (``on_error: record``), so
    that the next Snakemake run redoes those steps and everything downstream:
    ``exgsrc retry results && snakemake --cores all`` after fixing the input.
``exgsrc label TEXT`` / ``exgsrc unlabel LABEL``
    The path-safe condition label of a ``trial_type`` and back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .labels import condition_from_label, condition_label
from .runs import retry_failed
from .simulate import make_demo_bids
from .store import failure_reason, is_failed, open_dataset

__all__ = ["main"]


def _demo(args) -> int:
    conditions = tuple(c for c in args.conditions.split(",") if c)
    truth = make_demo_bids(
        args.out,
        n_subjects=args.subjects,
        conditions=conditions,
        seed=args.seed,
        n_channels=args.channels,
        n_trials=args.trials,
        montage=args.montage,
    )
    print(f"demo BIDS dataset written to {args.out} (truth: {truth})")
    return 0


def _info(args) -> int:
    ds = open_dataset(args.file)
    print(ds)
    return 0


def _failed(args) -> int:
    root = Path(args.results)
    if not root.is_dir():
        raise ValueError(f"results folder not found: {root}")
    n = 0
    for p in sorted(root.rglob("*.nc")):
        ds = open_dataset(p, attrs_only=True)
        if is_failed(ds):
            n += 1
            if args.quiet:
                print(p)
            else:
                print(f"{p}\t{failure_reason(ds)}")
    if not args.quiet:
        print(f"{n} failed output(s)", file=sys.stderr)
    return 0


def _retry(args) -> int:
    root = Path(args.results)
    if not root.is_dir():
        raise ValueError(f"results folder not found: {root}")
    removed = retry_failed(root)
    for path in removed:
        print(path)
    print(
        f"{len(removed)} failed output(s) removed; run Snakemake again to redo them",
        file=sys.stderr,
    )
    return 0


def _label(args) -> int:
    print(condition_label(args.text))
    return 0


def _unlabel(args) -> int:
    print(condition_from_label(args.label))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``exgsrc`` command."""
    p = argparse.ArgumentParser(prog="exgsrc", description="EEG source imaging for cohorts.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo-bids", help="write the simulated demo cohort as BIDS")
    d.add_argument("out", help="BIDS root to create")
    d.add_argument("--subjects", type=int, default=6)
    d.add_argument("--conditions", default="auditory,visual,somatosensory")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--channels", type=int, default=None, help="10-10 cap size (default 32)")
    d.add_argument(
        "--montage",
        default=None,
        choices=["GSN-HydroCel-129", "GSN-HydroCel-256"],
        help="simulate a high-density EGI net instead of the 10-10 cap",
    )
    d.add_argument("--trials", type=int, default=40)
    d.set_defaults(func=_demo)
    i = sub.add_parser("info", help="describe a netCDF output")
    i.add_argument("file")
    i.set_defaults(func=_info)
    f = sub.add_parser("failed", help="list failed-status outputs")
    f.add_argument("results")
    f.add_argument("-q", "--quiet", action="store_true", help="paths only")
    f.set_defaults(func=_failed)
    r = sub.add_parser("retry", help="remove recorded failed outputs so the next run redoes them")
    r.add_argument("results")
    r.set_defaults(func=_retry)
    lab = sub.add_parser("label", help="path-safe label of a condition name")
    lab.add_argument("text")
    lab.set_defaults(func=_label)
    unl = sub.add_parser("unlabel", help="condition name of a path-safe label")
    unl.add_argument("label")
    unl.set_defaults(func=_unlabel)
    return p


def main(argv=None) -> int:
    """Entry point of the ``exgsrc`` command.

    Parameters
    ----------
    argv : list of str | None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"exgsrc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
