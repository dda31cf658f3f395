"""Benchmark: exgsrc cluster permutation test vs MNE-Python, side by side.

Run: ``.venv/bin/python benchmarks/bench_stats.py [--n-permutations 1000] [--tfce]``

The case of issue 13: 40 subjects x ico-4 (2 562 sources) x 200 time points,
a sign-flip spatio-temporal cluster test (two-tailed, threshold at the
uncorrected p < 0.05 t value) with 1 000 permutations, ours
(``exgsrc.stats.cluster_permutation_test``) and MNE's
(``mne.stats.spatio_temporal_cluster_1samp_test`` with the same adjacency and
``rng=seed``, i.e. the same flips). The data are spatially smoothed noise (two
passes of neighbour averaging on the mesh, as source estimates are smooth)
with a positive and a negative effect.

Prints the best of ``--repeat`` timed runs after a warm-up (a few
permutations each) with the process CPU time of that run (all threads; on a
shared machine the steadier number), MNE/ours, whether the null distributions and p-values
agree, and the peak memory of each side, traced with :mod:`tracemalloc` in a
separate run with ``--memory-permutations`` flips (numpy reports its buffers
to tracemalloc; memory per run does not grow with the number of flips). With
``--tfce`` the same for TFCE (``start=0, step=0.2``) with
``--tfce-permutations`` flips. Ours uses ``exgsrc._system.thread_budget()``
threads (``OMP_NUM_THREADS``, ``--threads`` limit it), MNE ``n_jobs=None``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np


def _best(fn, repeat):
    """Best wall time of ``repeat`` runs, the process CPU time of that run, the result."""
    best, cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, cpu, out


def _peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _cohort(n_subjects, n_times, grade, seed=0):
    from exgsrc.source_space import ico_source_space
    from exgsrc.stats import source_adjacency

    src = ico_source_space(grade, 0.07)
    adj = source_adjacency(src)
    n_src = src.n_sources
    # neighbour averaging (row-normalised adjacency + identity), twice
    smooth = adj.astype(float) + _identity(n_src)
    smooth = smooth.multiply(1.0 / np.asarray(smooth.sum(axis=1)).ravel()[:, None]).tocsr()
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_subjects * n_times, n_src))
    for _ in range(2):
        X = (smooth @ X.T).T
    X = X.reshape(n_subjects, n_times, n_src)
    sd = X.std()
    X[:, n_times // 4 : n_times // 2, : n_src // 10] += 0.6 * sd
    X[:, n_times // 2 : 3 * n_times // 4, n_src // 2 : n_src // 2 + n_src // 12] -= 0.6 * sd
    return src, adj, X


def _identity(n):
    from scipy import sparse

    return sparse.identity(n, format="csr")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-subjects", type=int, default=40)
    ap.add_argument("--n-times", type=int, default=200)
    ap.add_argument("--grade", type=int, default=4, help="ico grade (4: 2 562 sources)")
    ap.add_argument("--n-permutations", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per side (best kept)")
    ap.add_argument("--memory-permutations", type=int, default=100)
    ap.add_argument("--tfce", action="store_true", help="also TFCE (start=0, step=0.2)")
    ap.add_argument("--no-cluster", action="store_true", help="skip the cluster test (TFCE only)")
    ap.add_argument("--tfce-permutations", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS threads (threadpoolctl), both sides; ours then runs that many batches",
    )
    args = ap.parse_args()

    import mne
    from scipy.stats import t as t_dist

    from exgsrc._system import thread_budget
    from exgsrc.stats import cluster_permutation_test, tfce_permutation_test

    mne.set_log_level("error")
    if args.threads is not None:  # after the imports: limits only reach loaded libraries
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    src, adj, X = _cohort(args.n_subjects, args.n_times, args.grade, args.seed)
    n = args.n_subjects
    thr = float(-t_dist.ppf(0.025, n - 1))
    print(
        f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, ours: {thread_budget()} threads"
    )
    print(
        f"{n} subjects x {args.n_times} times x {src.n_sources} sources (ico {args.grade}), "
        f"threshold t = {thr:.4f} (two-tailed), seed {args.seed}"
    )

    def ours(n_perm):
        return cluster_permutation_test(X, adj, thr, n_permutations=n_perm, seed=args.seed)

    def theirs(n_perm):
        return mne.stats.spatio_temporal_cluster_1samp_test(
            X, threshold=thr, n_permutations=n_perm, tail=0, adjacency=adj, rng=args.seed
        )

    def compare(label, n_perm, run_ours, run_mne, check):
        run_ours(5), run_mne(5)  # warm-up: imports, caches, first-call costs
        t_o, c_o, res = _best(lambda: run_ours(n_perm), args.repeat)
        print(f"{label}: ours {t_o:8.2f} s (CPU {c_o:8.2f} s)", flush=True)
        t_m, c_m, ref = _best(lambda: run_mne(n_perm), args.repeat)
        print(
            f"{label}: MNE  {t_m:8.2f} s (CPU {c_m:8.2f} s)   MNE/ours {t_m / t_o:6.1f}x "
            f"(CPU {c_m / c_o:6.1f}x)   {check(res, ref)}",
            flush=True,
        )
        m_perm = min(n_perm, args.memory_permutations)
        mem_o = _peak_mib(lambda: run_ours(m_perm))
        mem_m = _peak_mib(lambda: run_mne(m_perm))
        print(
            f"{label}: peak traced memory ({m_perm} permutations, data "
            f"{X.nbytes / 2**20:.0f} MiB not counted): ours {mem_o:7.0f} MiB   MNE {mem_m:7.0f} MiB",
            flush=True,
        )

    def check_clusters(res, ref):
        _, clusters, p, h0 = ref
        same_h0 = np.allclose(res.h0, h0, rtol=1e-10, atol=0)
        same_p = np.array_equal(res.cluster_p_values, p)
        n_sig = int((res.cluster_p_values < 0.05).sum())
        return (
            f"{res.n_clusters} clusters ({len(clusters)} MNE), {n_sig} with p < 0.05; "
            f"h0 equal (rtol 1e-10): {same_h0}; p-values equal: {same_p}"
        )

    if not args.no_cluster:
        compare(
            f"cluster test, {args.n_permutations} permutations",
            args.n_permutations,
            ours,
            theirs,
            check_clusters,
        )

    if args.tfce:

        def ours_tfce(n_perm):
            return tfce_permutation_test(
                X, adj, start=0.0, step=0.2, n_permutations=n_perm, seed=args.seed
            )

        def theirs_tfce(n_perm):
            return mne.stats.spatio_temporal_cluster_1samp_test(
                X,
                threshold=dict(start=0.0, step=0.2),
                n_permutations=n_perm,
                tail=0,
                adjacency=adj,
                rng=args.seed,
            )

        def check_tfce(res, ref):
            tfce, _, p, h0 = ref
            err = np.max(np.abs(res.tfce - tfce)) / np.max(np.abs(tfce))
            same_h0 = np.allclose(res.h0, h0, rtol=1e-10, atol=0)
            same_p = np.array_equal(res.p_values.ravel(), p)
            return f"TFCE max rel. diff {err:.1e}; h0 equal: {same_h0}; p equal: {same_p}"

        compare(
            f"TFCE, {args.tfce_permutations} permutations",
            args.tfce_permutations,
            ours_tfce,
            theirs_tfce,
            check_tfce,
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (both sides, data included): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
