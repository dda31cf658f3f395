"""Read + filter + epoch a long EDF recording: exgsrc vs MNE-Python.

Generates (once) a 64-channel, 1 kHz EDF of ``--minutes`` (default 60) into /tmp,
then times, for both libraries: reading the file into memory, a 1-40 Hz zero-phase
FIR band-pass (same design), and cutting baseline-corrected epochs (-0.2..0.8 s,
one event every 2 s, 150 µV peak-to-peak rejection). Prints timings and ratios.

Run: ``.venv/bin/python benchmarks/bench_io.py [--minutes 60] [--repeat 2]`` (best of
``--repeat`` interleaved runs per step; needs ~8 GB of memory for 60 minutes).
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
    sfreq = 1000.0
    n_t = int(args.minutes * 60 * sfreq)
    events = np.arange(int(sfreq), n_t - int(sfreq), int(2 * sfreq))
    labels = ["stim"] * events.size
    ours, theirs = {}, {}
    for _ in range(args.repeat):  # interleaved, best of N (the machine may be shared)
        o, n_ours, d_ours = run_ours(path, events, labels)
        m, n_mne, d_mne = run_mne(path, events, labels)
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
