"""Facts about the machine the numerics run on."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """Number of CPUs this process may run on (affinity- and cgroup-cpuset-aware).

    Returns
    -------
    int
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def thread_budget() -> int:
    """Threads our own parallel sections may use: the CPUs this process may run on,
    but no more than the BLAS thread pool is currently allowed.

    The BLAS pool size follows ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` /
    ``MKL_NUM_THREADS`` (Snakemake sets them to each job's ``threads``, so
    parallel jobs do not oversubscribe the machine) and any
    ``threadpoolctl.threadpool_limits`` the caller has in force. Our parallel
    sections replace BLAS's own threading (they run single-threaded BLAS per
    worker), so they honour the same limit.

    Returns
    -------
    int
        At least 1.
    """
    import numpy  # noqa: F401  (loads the BLAS whose pool size is the limit)
    from threadpoolctl import threadpool_info

    budget = available_cpus()
    blas = [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]
    if blas:  # numpy's and scipy's may be separate libraries: honour the tightest
        budget = min(budget, *blas)
    return max(1, budget)
