"""Read + filter + epoch a long EDF recording: exgsrc vs MNE-Python.

Generates (once) a 64-channel, 1 kHz EDF of ``--minutes`` (default 60) into /tmp,
then times, for both libraries: reading the file into memory, a 1-40 Hz zero-phase
FIR band-pass (same design), and cutting baseline-corrected epochs (-0.2..0.8 s,
one event every 2 s, 150 µV peak-to-peak rejection). Prints timings and ratios.

Each library runs in its own fresh subprocess (alternating, best of ``--repeat``), so
both pay the same first-touch cost of new memory: in one long-lived process the
order of the runs changed the epoching times by 2-3x.

Run: ``.venv/bin/python benchmarks/bench_io.py [--minutes 60] [--repeat 2]`` (needs
~5 GB of memory for 60 minutes).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def make_edf(path: Path, minutes: float, n_ch: int = 64, sfreq: float = 1000.0) -> None:
    import edfio

    n_t = int(minutes * 60 * sfreq)
    rng = np.random.default_rng(0)
    sigs = []
    t = np.arange(n_t) / sfreq
    for i in range(n_ch):
        x = rng.standard_normal(n_t).astype(np.float64) * 10.0  # µV
        x += 5.0 * np.sin(2 * np.pi * (8 + i % 5) * t)
        sigs.append(
            edfio.EdfSignal(
                x,
                sfreq,
                label=f"EEG{i:03d}",
                physical_dimension="uV",
                physical_range=(-500.0, 500.0),
            )
        )
    edfio.Edf(sigs).write(path)


def run_ours(path, events, labels):
    from exgsrc.io.edf import read_edf
    from exgsrc.preprocessing import filter_raw, make_epochs

    t = {}
    t0 = time.perf_counter()
    raw = read_edf(path)
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = filter_raw(raw, 1.0, 40.0, copy=False)  # in place, as mne.io.Raw.filter
    t["filter"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ep = make_epochs(raw, events, labels, -0.2, 0.8, (None, 0.0), {"eeg": 150e-6})
    t["epoch"] = time.perf_counter() - t0
    return t, ep.n_epochs, ep.data[:3, 0, :5]


def run_mne(path, events, labels):
    import mne

    t = {}
    t0 = time.perf_counter()
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw.filter(1.0, 40.0, fir_design="firwin", verbose="error")
    t["filter"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = np.column_stack([events, np.zeros_like(events), np.ones_like(events)])
    ep = mne.Epochs(
        raw,
        ev,
        {"stim": 1},
        -0.2,
        0.8,
        baseline=(None, 0),
        reject=dict(eeg=150e-6),
        preload=True,
        verbose="error",
    )
    t["epoch"] = time.perf_counter() - t0
    return t, len(ep), ep.get_data()[:3, 0, :5]


def _events(minutes: float, sfreq: float = 1000.0):
    n_t = int(minutes * 60 * sfreq)
    events = np.arange(int(sfreq), n_t - int(sfreq), int(2 * sfreq))
    return events, ["stim"] * events.size


def _in_subprocess(which: str, path: Path, minutes: float):
    """Run one library's read + filter + epoch in a fresh Python process."""
    import json
    import subprocess
    import sys

    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_io as b; "
        f"ev, lab = b._events({minutes!r}); "
        f"t, n, d = b.run_{which}({str(path)!r}, ev, lab); "
        "print(json.dumps([t, n, d.tolist()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    t, n, d = json.loads(out.strip().splitlines()[-1])
    return t, n, np.asarray(d)


def _prefault_memory(gigabytes: float) -> None:
    """Touch (then free) this much memory once, before any timing.

    On a virtual machine the first touch of guest memory that was never used is
    several times slower than later touches (the host backs pages on demand): a
    library that allocated and freed big temporaries earlier in its run then gets
    cheap pages for its epochs, one that works in place does not. Touching the
    memory once up front gives both libraries the same, warm, conditions.
    """
    block = np.empty(int(gigabytes * 2**30 // 8))
    block.fill(1.0)
    del block


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=2, help="runs per library; best time kept")
    args = ap.parse_args()
    path = (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"exgsrc_bench_{args.minutes:g}min_64ch_1kHz.edf"
    )
    if not path.is_file():
        t0 = time.perf_counter()
        make_edf(path, args.minutes)
        print(
            f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
        )
    events, _ = _events(args.minutes)
    _prefault_memory(min(12.0, 0.12 * args.minutes))  # ~7 GB for 60 minutes
    ours, theirs = {}, {}
    for _ in range(args.repeat):  # alternating fresh processes, best of N
        o, n_ours, d_ours = _in_subprocess("ours", path, args.minutes)
        m, n_mne, d_mne = _in_subprocess("mne", path, args.minutes)
        for k in o:
            ours[k] = min(ours.get(k, np.inf), o[k])
            theirs[k] = min(theirs.get(k, np.inf), m[k])
    assert n_ours == n_mne, (n_ours, n_mne)
    err = np.abs(d_ours - d_mne).max() / np.abs(d_mne).max()
    print(
        f"{args.minutes:g} min, 64 ch, 1 kHz, {events.size} events, kept {n_ours} epochs "
        f"(both), first-epoch max rel diff {err:.1e}"
    )
    print(f"{'step':8s} {'exgsrc (s)':>11s} {'MNE (s)':>9s} {'MNE/exgsrc':>11s}")
    for k in ("read", "filter", "epoch"):
        print(f"{k:8s} {ours[k]:11.2f} {theirs[k]:9.2f} {theirs[k] / ours[k]:11.2f}")
    to, tm = sum(ours.values()), sum(theirs.values())
    print(f"{'total':8s} {to:11.2f} {tm:9.2f} {tm / to:11.2f}")


if __name__ == "__main__":
    main()
