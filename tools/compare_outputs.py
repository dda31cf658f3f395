"""Compare the netCDF outputs of two workflow runs, variable by variable.

    python tools/compare_outputs.py RESULTS_A RESULTS_B [--rtol 0] [--attrs]

Every ``*.nc`` file under either folder is matched by its relative path. Data
variables and coordinates must be equal (bit for bit with ``--rtol 0``, the
default); attributes are compared with ``--attrs``, except those that change from
run to run (``created``, ``exgsrc_version``, ``inputs``' paths). Exits 1 and lists
every difference, or prints how many files and variables agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from exgsrc.store import open_dataset

VOLATILE_ATTRS = {"created", "exgsrc_version", "inputs"}


def _equal(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=rtol, atol=0.0, equal_nan=True))
    return bool(np.array_equal(a, b))


def _same_attr(x, y) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.array_equal(np.asarray(x), np.asarray(y))
    return x == y


def compare_file(path_a: Path, path_b: Path, rtol: float, attrs: bool) -> tuple[int, list[str]]:
    """Number of variables compared and the differences found in one pair of files."""
    a, b = open_dataset(path_a), open_dataset(path_b)
    problems = []
    names_a, names_b = set(a.variables), set(b.variables)
    for name in sorted(names_a ^ names_b):
        problems.append(f"variable {name!r} only in {'A' if name in names_a else 'B'}")
    for name in sorted(names_a & names_b):
        va, vb = a[name], b[name]
        if va.dims != vb.dims:
            problems.append(f"{name}: dims {va.dims} vs {vb.dims}")
        elif not _equal(np.asarray(va.values), np.asarray(vb.values), rtol):
            problems.append(f"{name}: values differ")
    if attrs:
        keys = (set(a.attrs) | set(b.attrs)) - VOLATILE_ATTRS
        problems += [
            f"attr {k!r} differs"
            for k in sorted(keys)
            if not _same_attr(a.attrs.get(k), b.attrs.get(k))
        ]
    return len(names_a & names_b), problems


def main(argv=None) -> int:
    """Compare two result folders; exit status 1 on any difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rtol", type=float, default=0.0)
    parser.add_argument("--attrs", action="store_true", help="compare attributes too")
    args = parser.parse_args(argv)
    files_a = {p.relative_to(args.a) for p in args.a.rglob("*.nc")}
    files_b = {p.relative_to(args.b) for p in args.b.rglob("*.nc")}
    problems = [
        f"{rel}: only in {'A' if rel in files_a else 'B'}" for rel in sorted(files_a ^ files_b)
    ]
    n_vars = 0
    for rel in sorted(files_a & files_b):
        n, found = compare_file(args.a / rel, args.b / rel, args.rtol, args.attrs)
        n_vars += n
        problems += [f"{rel}: {p}" for p in found]
    for p in problems:
        print(p)
    print(
        f"{len(files_a & files_b)} files, {n_vars} variables compared; {len(problems)} differences",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
