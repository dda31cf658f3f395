"""Benchmark: exgsrc inverse vs MNE-Python, side by side.

Run::

    .venv/bin/python benchmarks/bench_inverse.py --grade 5 --channels 64 128 256 \
        [--n-times 10000] [--repeat 5] [--sections operator eloreta apply] [--threads N]

For a sphere model (biosemi 64/128/256 montage) and an ico source space
(grade 5: 10 242 sources), per channel count:

* ``operator``: ``make_inverse_operator`` loose 0.2 and fixed, ours vs MNE,
  round-robin (warm-up, then ``--repeat`` rounds), with the relative error of
  the MNE, dSPM and sLORETA estimates on an evoked against MNE's;
* ``eloreta``: eLORETA on an evoked (64-256 ch x 300 samples, loose 0.2):
  weight fit + kernel + apply on both sides;
* ``apply``: dSPM fixed (float64 and float32) and sLORETA free on
  ``--n-times`` samples against one plain ``kernel @ data`` of the same shape and
  MNE's ``apply_inverse_raw``. Each callable is timed back to back (its own
  steady state) in two forms: ``fresh`` (a new output array per call, as
  ``prep.apply(data)`` and MNE do) and ``reuse`` (into one preallocated ``out``
  buffer; no page faults). With ``--first-call``, the first call of each
  contender is also timed in its own new process (``first``): the cost of
  touching memory the process never had, which on this virtual machine includes
  the hypervisor backing the pages (see benchmarks/README.md).

Every row prints median (min) in ms and the ratio of medians; the whole run is
written to ``benchmarks/results/bench_inverse_<date>_<host>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

LAMBDA2 = 1.0 / 9.0


def build_case(grade: int, n_channels: int, n_times: int, seed: int = 0) -> dict:
    """MNE and exgsrc versions of the same forward, covariance and data."""
    import mne
    from mne.surface import _get_ico_surface

    from exgsrc.forward import Forward
    from exgsrc.source_space import SourceSpace

    mne.set_log_level("error")
    unit = _get_ico_surface(grade)["rr"]
    rr = unit * 0.06 + np.array([0.0, 0.0, 0.04])
    src = mne.setup_volume_source_space(pos=dict(rr=rr, nn=unit), sphere=(0, 0, 0.04, 0.09))
    pos = mne.channels.make_standard_montage(f"biosemi{n_channels}").get_positions()["ch_pos"]
    names = list(pos)
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(pos, coord_frame="head"))
    sphere = mne.make_sphere_model(r0=(0, 0, 0.04), head_radius=0.09, info=info)
    fwd = mne.convert_forward_solution(
        mne.make_forward_solution(info, trans=None, src=src, bem=sphere), surf_ori=True
    )
    n = len(names)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n)) @ rng.standard_normal((n, 5000)) * 1e-6
    cov_data = x @ x.T / x.shape[1]
    cov = mne.Covariance(cov_data, names, [], [], x.shape[1] - 1)
    s = src[0]
    ours_fwd = Forward(
        np.array(fwd["_orig_sol"]),
        tuple(names),
        np.array(list(pos.values())),
        SourceSpace(s["rr"][s["vertno"]], s["nn"][s["vertno"]], kind="discrete"),
        "free",
    )
    raw_data = rng.standard_normal((n, n_times)) * 1e-6
    raw = mne.io.RawArray(raw_data, info)
    raw.set_eeg_reference(projection=True)
    evoked = mne.EvokedArray(raw_data[:, :300].copy(), raw.info, nave=30)
    return dict(
        fwd=fwd, cov=cov, cov_data=cov_data, ours_fwd=ours_fwd, raw=raw, raw_data=raw_data,
        evoked=evoked, n_channels=n, n_sources=ours_fwd.n_sources,
    )  # fmt: skip


def _rel_err(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _operators(case, loose):
    import mne

    from exgsrc.inverse import make_inverse_operator

    fixed = loose == 0.0
    inv = make_inverse_operator(case["ours_fwd"], case["cov_data"], loose=loose, fixed=fixed)
    minv = mne.minimum_norm.make_inverse_operator(
        case["raw"].info, case["fwd"], case["cov"], loose=loose, fixed=True if fixed else "auto"
    )
    return inv, minv


def bench_operator(case, args, out):
    import mne

    from exgsrc.inverse import make_inverse_operator, prepare_inverse

    for loose in (0.2, 0.0):
        fixed = loose == 0.0
        res = bc.interleaved(
            {
                "exgsrc": lambda loose=loose, fixed=fixed: make_inverse_operator(
                    case["ours_fwd"], case["cov_data"], loose=loose, depth=0.8, fixed=fixed
                ),
                "mne": lambda loose=loose, fixed=fixed: mne.minimum_norm.make_inverse_operator(
                    case["raw"].info,
                    case["fwd"],
                    case["cov"],
                    loose=loose,
                    depth=0.8,
                    fixed=True if fixed else "auto",
                ),
            },
            args.repeat,
            args.warmup,
        )
        inv, minv = _operators(case, loose)
        ev = case["evoked"]
        errs = {}
        for method in ("MNE", "dSPM", "sLORETA"):
            ref = mne.minimum_norm.apply_inverse(ev, minv, LAMBDA2, method).data
            errs[method] = _rel_err(
                prepare_inverse(inv, ev.nave, LAMBDA2, method).apply(ev.data), ref
            )
        name = f"make_inverse_operator loose={loose}"
        bc.print_row(
            name, res["exgsrc"], res["mne"],
            extra="rel err " + " ".join(f"{k} {v:.1e}" for k, v in errs.items()),
        )  # fmt: skip
        out.append(_record("operator", name, case, res, rel_err=errs, loose=loose))


def bench_eloreta(case, args, out):
    import mne

    from exgsrc.inverse import prepare_inverse

    ev = case["evoked"]
    for loose in args.eloreta_loose:
        inv, minv = _operators(case, loose)
        res = bc.interleaved(
            {
                "exgsrc": lambda inv=inv: prepare_inverse(inv, ev.nave, LAMBDA2, "eLORETA").apply(
                    ev.data
                ),
                "mne": lambda minv=minv: mne.minimum_norm.apply_inverse(
                    ev, minv, LAMBDA2, "eLORETA"
                ),
            },
            args.eloreta_repeat,
            args.warmup,
        )
        prep = prepare_inverse(inv, ev.nave, LAMBDA2, "eLORETA")
        err = _rel_err(
            prep.apply(ev.data), mne.minimum_norm.apply_inverse(ev, minv, LAMBDA2, "eLORETA").data
        )
        info = prep.eloreta_info
        name = f"eLORETA loose={loose} evoked ({case['n_channels']} x {ev.data.shape[1]})"
        bc.print_row(
            name, res["exgsrc"], res["mne"],
            extra=f"iterations {info['n_iter']}, rel err {err:.1e}",
        )  # fmt: skip
        out.append(
            _record("eloreta", name, case, res, rel_err={"eLORETA": err}, loose=loose,
                    n_iter=info["n_iter"])
        )  # fmt: skip


def _apply_contenders(case, label):
    """Callables of one apply row: name -> (fresh-output callable, reuse-output callable|None)."""
    import mne

    from exgsrc.inverse import prepare_inverse

    loose, method, dtype = {
        "dSPM fixed float64": (0.0, "dSPM", np.float64),
        "dSPM fixed float32": (0.0, "dSPM", np.float32),
        "sLORETA free float64": (1.0, "sLORETA", np.float64),
    }[label]
    inv, minv = _operators(case, loose)
    prep = prepare_inverse(inv, 1, LAMBDA2, method, dtype=dtype)
    data = case["raw_data"]
    data_cast = data.astype(dtype)
    k = prep.kernel
    # the plain product of the same shape: kernel rows x data, in the kernel's dtype
    shape = (prep.n_sources, data.shape[1])
    buf = np.empty(shape, dtype=dtype)
    buf_mm = np.empty((k.shape[0], data.shape[1]), dtype=dtype)
    fns = {
        "exgsrc": (lambda: prep.apply(data), lambda: prep.apply(data, out=buf)),
        "matmul": (lambda: k @ data_cast, lambda: np.matmul(k, data_cast, out=buf_mm)),
        "mne": (
            lambda: mne.minimum_norm.apply_inverse_raw(case["raw"], minv, LAMBDA2, method),
            None,
        ),
    }
    head = data[:, :2000]
    ref = mne.minimum_norm.apply_inverse_raw(case["raw"], minv, LAMBDA2, method, stop=2000).data
    err = _rel_err(prep.apply(head), ref)
    return fns, err, k.shape


APPLY_ROWS = ("dSPM fixed float64", "dSPM fixed float32", "sLORETA free float64")


def bench_apply(case, args, out):
    for label in APPLY_ROWS:
        fns, err, kshape = _apply_contenders(case, label)
        fresh = bc.back_to_back({k: v[0] for k, v in fns.items()}, args.repeat, args.warmup)
        reuse = bc.back_to_back(
            {k: v[1] for k, v in fns.items() if v[1] is not None}, args.repeat, args.warmup
        )
        first = {}
        if args.first_call:
            for name in ("exgsrc", "matmul"):
                first[name] = _first_call_subprocess(args, case["n_channels"], label, name)
        del fns
        name = f"apply {label} ({case['n_channels']} ch x {args.n_times})"
        r_fresh = fresh["exgsrc"]["median"] / fresh["matmul"]["median"]
        r_reuse = reuse["exgsrc"]["median"] / reuse["matmul"]["median"]
        bc.print_row(name + " fresh", fresh["exgsrc"], fresh["mne"], extra=f"rel err {err:.1e}")
        bc.print_row(
            name + " fresh", fresh["exgsrc"], fresh["matmul"], ref_name="matmul",
            extra=f"exgsrc/matmul {r_fresh:.2f}",
        )  # fmt: skip
        bc.print_row(
            name + " reuse out", reuse["exgsrc"], reuse["matmul"], ref_name="matmul",
            extra=f"exgsrc/matmul {r_reuse:.2f}",
        )  # fmt: skip
        if first:
            print(
                f"{name} first call in a new process: exgsrc "
                + ", ".join(f"{t * 1e3:.0f}" for t in first["exgsrc"])
                + " ms; matmul "
                + ", ".join(f"{t * 1e3:.0f}" for t in first["matmul"])
                + " ms",
                flush=True,
            )
        out.append(
            _record(
                "apply", name, case, fresh, rel_err={label.split()[0]: err},
                kernel_shape=list(kshape), reuse=reuse, first_call=first,
                exgsrc_over_matmul={"fresh": r_fresh, "reuse": r_reuse},
            )
        )  # fmt: skip


def _first_call_subprocess(args, n_channels, label, who, rounds=2):
    """First-call times of ``who`` in ``rounds`` new processes."""
    times = []
    for _ in range(rounds):
        cmd = [
            sys.executable, __file__, "--grade", str(args.grade), "--channels", str(n_channels),
            "--n-times", str(args.n_times), "--_first-call", f"{label}|{who}",
        ]  # fmt: skip
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append(json.loads(res.stdout.strip().splitlines()[-1])["first"])
    return times


def _first_call_child(args):
    label, who = args.first_call_child.split("|")
    case = build_case(args.grade, args.channels[0], args.n_times)
    fns, _, _ = _apply_contenders(case, label)
    fn = fns[who][0]
    t0 = time.perf_counter()
    res = fn()
    dt = time.perf_counter() - t0
    del res
    print(json.dumps({"first": dt}))


def _record(section, name, case, res, **extra):
    rec = {
        "section": section,
        "name": name,
        "n_channels": case["n_channels"],
        "n_sources": case["n_sources"],
        "timings": res,
        "ratio_median": res["mne"]["median"] / res["exgsrc"]["median"],
        "ratio_min": res["mne"]["min"] / res["exgsrc"]["min"],
        "load_average": bc.load_average(),
    }
    rec.update(extra)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grade", type=int, default=5, help="ico grade of the source space")
    ap.add_argument("--channels", type=int, nargs="+", default=[64], choices=(64, 128, 256))
    ap.add_argument("--n-times", type=int, default=10_000, help="samples of the apply rows")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (after --warmup)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--eloreta-repeat", type=int, default=None, help="default: --repeat")
    ap.add_argument("--eloreta-loose", type=float, nargs="+", default=[0.2])
    ap.add_argument(
        "--sections", nargs="+", default=["operator", "eloreta", "apply"],
        choices=("operator", "eloreta", "apply"),
    )  # fmt: skip
    ap.add_argument("--first-call", action="store_true", help="also time first calls (apply)")
    ap.add_argument(
        "--threads", type=int, default=None, help="limit BLAS threads (threadpoolctl), both sides"
    )
    ap.add_argument("--_first-call", dest="first_call_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.eloreta_repeat is None:
        args.eloreta_repeat = args.repeat

    import mne  # noqa: F401  (loaded before threadpool_limits, which only reaches loaded libraries)

    import exgsrc.inverse  # noqa: F401

    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    if args.first_call_child:
        _first_call_child(args)
        return

    print(f"load average {bc.load_average()}, {os.cpu_count()} CPUs", flush=True)
    results = []
    for n_ch in args.channels:
        t0 = time.perf_counter()
        case = build_case(args.grade, n_ch, args.n_times)
        print(
            f"--- {case['n_channels']} ch, {case['n_sources']} sources (ico {args.grade}); "
            f"median (min) of {args.repeat} after {args.warmup} warm-up "
            f"(setup {time.perf_counter() - t0:.1f} s, load {bc.load_average()})",
            flush=True,
        )
        if "operator" in args.sections:
            bench_operator(case, args, results)
        if "eloreta" in args.sections:
            bench_eloreta(case, args, results)
        if "apply" in args.sections:
            bench_apply(case, args, results)
        del case
    bc.write_json("bench_inverse", vars(args), results)


if __name__ == "__main__":
    main()
