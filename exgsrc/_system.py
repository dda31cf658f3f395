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
