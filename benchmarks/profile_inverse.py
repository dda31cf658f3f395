"""Profile of make_inverse_operator and eLORETA, step by step, with a flop model.

Run::

    .venv/bin/python benchmarks/profile_inverse.py --grade 5 --channels 64 128 256

One worker and one BLAS thread (cProfile sees only the calling thread), so the
times are single-core. For each step: time (cProfile cumulative, best of
``--repeat`` runs), flops of its BLAS part and the rate reached. Notation: ``n``
channels, ``r`` whitened rank (n - 1 with the average reference), ``m``
sources, ``c`` gain columns (3 m loose/free, m fixed). The flop counts are the
ones of the algorithms (GEMM 2 x y z, SYRK/TRSM x^2 z); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

# (label, function name as cProfile sees it, flop model or None)
OPERATOR_STEPS = [
    ("noise cov: checks, rank, eigh (n x n)", "eigh_whitening", None),
    ("per chunk: transpose, depth Gram, local frame, whiten GEMM", "whiten_part",
     lambda n, r, m, c: 2 * n * n * c),
    ("depth prior: 3x3 eigenvalues (Jacobi)", "sym3_eigh", None),
    ("Gram of the weighted gain (SYRK, per chunk)", "gram_part", lambda n, r, m, c: r * r * c),
    ("V = weighted gain @ U (GEMM) + norms", "v_part", lambda n, r, m, c: 2 * r * r * c),
    ("V /= s", "scale_part", None),
]  # fmt: skip
ELORETA_STEPS = [
    ("G R G^T: F-weighted rows + SYRK (per iteration)", "gram_part",
     lambda n, r, m, c, it: (it + 2) * r * r * c),
    ("M_k: copy + TRMM, 3x3 Grams, Jacobi (per iteration)", "update_part",
     lambda n, r, m, c, it: it * r * r * c),
    ("  of which 3x3 Jacobi", "sym3_eigh", None),
    ("Cholesky of G R G^T + lambda2 I", "__init__", None),
    ("kernel R G^T N W P (GEMM)", "kernel_part", lambda n, r, m, c, it: 2 * r * n * c),
]  # fmt: skip


def _cumulative(stats: pstats.Stats, name: str, filename_part: str) -> float:
    total = 0.0
    for (fname, _, func), (_, _, _, ct, _) in stats.stats.items():
        if func == name and filename_part in fname:
            total += ct
    return total


def _profile(fn, repeat):
    best = None
    for _ in range(repeat):
        pr = cProfile.Profile()
        pr.enable()
        fn()
        pr.disable()
        st = pstats.Stats(pr)
        if best is None or st.total_tt < best.total_tt:
            best = st
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grade", type=int, default=5)
    ap.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import numpy as np  # noqa: F401
    from bench_inverse import build_case
    from threadpoolctl import threadpool_limits

    from exgsrc.inverse import make_inverse_operator, prepare_inverse

    threadpool_limits(1)
    print(f"load average {bc.load_average()}; one worker, one BLAS thread")
    records = []
    for n_ch in args.channels:
        case = build_case(args.grade, n_ch, 1000)
        n, m = case["n_channels"], case["n_sources"]
        for loose in (0.2, 0.0):
            c = 3 * m if loose else m

            def op(loose=loose, case=case):
                return make_inverse_operator(
                    case["ours_fwd"], case["cov_data"], loose=loose, fixed=loose == 0.0
                )

            inv = op()
            r = int(np.sum(inv.noise_eig > 0))
            st = _profile(op, args.repeat)
            print(f"\n--- make_inverse_operator loose={loose}: {n} ch, {m} sources, "
                  f"total {st.total_tt * 1e3:.0f} ms")  # fmt: skip
            steps = []
            for label, func, model in OPERATOR_STEPS:
                where = "inverse" if func == "whiten_part" else "linalg"
                t = _cumulative(st, func, where)
                flops = model(n, r, m, c) if model else None
                steps.append(_step(label, t, flops))
            records.append({"what": "operator", "loose": loose, "n_channels": n,
                            "total": st.total_tt, "steps": steps})  # fmt: skip

        inv = make_inverse_operator(case["ours_fwd"], case["cov_data"], loose=0.2)
        r, c = int(np.sum(inv.noise_eig > 0)), 3 * m
        prep = prepare_inverse(inv, 30, 1.0 / 9.0, "eLORETA")
        it = prep.eloreta_info["n_iter"]
        st = _profile(lambda inv=inv: prepare_inverse(inv, 30, 1.0 / 9.0, "eLORETA"), args.repeat)
        print(f"\n--- eLORETA loose=0.2: {n} ch, {m} sources, {it} iterations, "
              f"total {st.total_tt * 1e3:.0f} ms")  # fmt: skip
        steps = []
        for label, func, model in ELORETA_STEPS:
            where = "linalg" if func == "sym3_eigh" else "eloreta"
            t = _cumulative(st, func, where)
            flops = model(n, r, m, c, it) if model else None
            steps.append(_step(label, t, flops))
        records.append({"what": "eloreta", "loose": 0.2, "n_channels": n, "n_iter": it,
                        "total": st.total_tt, "steps": steps})  # fmt: skip
    bc.write_json("profile_inverse", vars(args), records)


def _step(label, t, flops):
    rate = f"{flops / t / 1e9:5.1f} GFlop/s" if flops and t > 0 else ""
    fl = f"{flops / 1e9:6.2f} GFlop" if flops else ""
    print(f"  {label:<58s} {t * 1e3:8.1f} ms  {fl:>12s}  {rate}")
    return {"label": label, "seconds": t, "flops": flops}


if __name__ == "__main__":
    main()
