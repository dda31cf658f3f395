"""Shared helpers of the benchmark scripts: timing, machine facts, JSON records.

Every ``bench_*.py`` that imports this writes one JSON per run to
``benchmarks/results/<bench>_<YYYYmmdd-HHMMSS>_<host>.json`` (machine, library
versions, arguments, every single timing); ``report_table.py`` turns the newest
ones into the README's Markdown rows.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    """CPU model, core counts, memory, load and library versions."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover (not Linux)
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:  # pragma: no cover
        pass
    versions = {}
    for mod in ("numpy", "scipy", "mne", "numba", "threadpoolctl"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 (optional)
            versions[mod] = None
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for lib in threadpool_info()
        ]
    except Exception:  # noqa: BLE001
        pass
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "mem_total_gb": mem_gb,
        "python": platform.python_version(),
        "versions": versions,
        "blas": blas,
    }


def load_average() -> list[float]:
    """1, 5, 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def summary(times: list[float]) -> dict:
    """Median, min, max and all values (seconds)."""
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "n": len(times),
        "all": list(times),
    }


def interleaved(fns: dict, repeat: int, warmup: int = 1) -> dict:
    """Time callables round-robin (machine load hits all alike).

    Parameters
    ----------
    fns : dict of name -> callable
    repeat : int
        Timed rounds.
    warmup : int
        Untimed rounds first (caches, lazy imports, JIT, page faults of reused buffers).

    Returns
    -------
    dict of name -> :func:`summary`
    """
    for _ in range(warmup):
        for fn in fns.values():
            del_ = fn()
            del del_
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            res = fn()
            times[name].append(time.perf_counter() - t0)
            del res
    return {name: summary(t) for name, t in times.items()}


def back_to_back(fns: dict, repeat: int, warmup: int = 1) -> dict:
    """Time each callable ``warmup + repeat`` times in a row (its own steady state).

    For calls that allocate and free ~1 GB: freeing keeps the kernel busy for a
    moment, and round-robin timing charges that to whichever call comes next.
    """
    out = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            res = fn()
            del res
        t = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = fn()
            t.append(time.perf_counter() - t0)
            del res
        out[name] = summary(t)
    return out


def fmt_ms(s: dict) -> str:
    """``median (min)`` in ms."""
    return f"{s['median'] * 1e3:8.1f} ({s['min'] * 1e3:8.1f}) ms"


def print_row(name: str, ours: dict, ref: dict, ref_name: str = "MNE", extra: str = "") -> None:
    """One line: ours and the reference, median (min), and the ratio of medians."""
    ratio = ref["median"] / ours["median"]
    print(
        f"{name:<44s} exgsrc {fmt_ms(ours)}  {ref_name} {fmt_ms(ref)}  "
        f"{ref_name}/exgsrc {ratio:5.2f}x  {extra}",
        flush=True,
    )


def write_json(bench: str, args: dict, results: list, extra: dict | None = None) -> Path:
    """Write one run's record to ``benchmarks/results/<bench>_<date>_<host>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now()
    host = socket.gethostname().split(".")[0] or "host"
    path = RESULTS / f"{bench}_{now:%Y%m%d-%H%M%S}_{host}.json"
    record = {
        "bench": bench,
        "date": now.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_end": load_average(),
        "args": args,
        "results": results,
    }
    if extra:
        record.update(extra)
    path.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {path}")
    return path
