"""Thread budget of our parallel sections (exgsrc/_system.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from threadpoolctl import threadpool_limits

from exgsrc._system import available_cpus, thread_budget


def test_thread_budget_within_affinity_and_follows_blas_limits():
    assert 1 <= thread_budget() <= available_cpus() <= (os.cpu_count() or 1)
    with threadpool_limits(1, user_api="blas"):
        assert thread_budget() == 1


def test_thread_budget_follows_the_environment_snakemake_sets():
    # Snakemake runs each job's script with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set
    # to the rule's threads; parallel jobs must then not each use every core
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = "from exgsrc._system import thread_budget; print(thread_budget())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"


def test_thread_budget_honours_the_tightest_blas_pool():
    import scipy.linalg  # noqa: F401  (loads scipy's own BLAS beside numpy's)
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas").lib_controllers
    numpy_blas = [c for c in blas if "numpy" in c.filepath]
    assert numpy_blas and len(blas) >= 2, [c.filepath for c in blas]
    # only numpy's pool limited (scipy's keeps its size): numpy's matmul is what
    # our workers run, so the budget follows the tighter pool
    before = numpy_blas[0].num_threads
    numpy_blas[0].set_num_threads(1)
    try:
        assert thread_budget() == 1
    finally:
        numpy_blas[0].set_num_threads(before)
