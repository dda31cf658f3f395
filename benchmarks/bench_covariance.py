"""Benchmark: exgsrc.covariance vs mne.compute_covariance (N ch x 200 epochs).

Run: .venv/bin/python benchmarks/bench_covariance.py [--channels 64 128 256]
[--methods empirical ledoit_wolf shrunk auto] [--repeat 3] [--warmup 1]

Baseline-like epochs (200 x 50 samples at 250 Hz, 20 sources mixed into N
channels plus white noise, average-referenced). Both sides run with one BLAS
thread (stable timings on a shared 2-core machine; MNE limits BLAS threads
inside its covariance code anyway), round-robin: median and min. ``--grade``
is accepted for a uniform command line with the other benchmarks; the noise
covariance does not depend on the source space. Each run is written to
``benchmarks/results/bench_covariance_<date>_<host>.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

from exgsrc.covariance import compute_covariance_epochs  # noqa: E402

N_EPOCHS, N_TIMES, SFREQ = 200, 50, 250.0  # 0.2 s baselines at 250 Hz
METHODS = ("empirical", "ledoit_wolf", "shrunk", "auto")


def make_data(n_channels, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((n_channels, 20))
    z = rng.standard_normal((N_EPOCHS, 20, N_TIMES))
    data = np.einsum("cs,est->ect", mix, z) + 0.5 * rng.standard_normal(
        (N_EPOCHS, n_channels, N_TIMES)
    )
    data *= 5e-6
    data -= data.mean(axis=-1, keepdims=True)
    return data, [f"EEG{i:03d}" for i in range(n_channels)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grade", type=int, default=None, help="accepted, unused (no sources)")
    ap.add_argument("--channels", type=int, nargs="+", default=[64], choices=(64, 128, 256))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    import mne

    mne.set_log_level("error")
    print(
        f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
        f"load average {bc.load_average()}"
    )
    results = []
    for n_ch in args.channels:
        data, names = make_data(n_ch)
        info = mne.create_info(names, SFREQ, "eeg")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            epo = mne.EpochsArray(data.copy(), info, baseline=None)
            epo.set_eeg_reference(projection=True)
            epo.apply_proj()
        print(f"--- {n_ch} channels x {N_EPOCHS} epochs x {N_TIMES} samples (avg-ref projector); "
              f"median (min) of {args.repeat} after {args.warmup} warm-up")  # fmt: skip
        for method in args.methods:

            def run_mne(m=method, epo=epo):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return mne.compute_covariance(epo, method=m)

            res = bc.interleaved(
                {
                    "exgsrc": lambda m=method, d=data, n=names: compute_covariance_epochs(d, n, m),
                    "mne": run_mne,
                },
                args.repeat,
                args.warmup,
            )
            ours = compute_covariance_epochs(data, names, method)
            ref = run_mne()
            chosen = f"{ours.method}/{ref.get('method', 'empirical')}"
            if "shrinkage" in ours.meta:
                chosen += f" shrinkage {ours.meta['shrinkage']:.4g}"
            name = f"covariance {method}, {n_ch} ch x {N_EPOCHS} epochs"
            bc.print_row(name, res["exgsrc"], res["mne"], extra=f"chosen (ours/MNE) {chosen}")
            results.append(
                {
                    "section": "covariance",
                    "name": name,
                    "method": method,
                    "n_channels": n_ch,
                    "timings": res,
                    "ratio_median": res["mne"]["median"] / res["exgsrc"]["median"],
                    "ratio_min": res["mne"]["min"] / res["exgsrc"]["min"],
                    "chosen": chosen,
                    "load_average": bc.load_average(),
                }
            )
    bc.write_json("bench_covariance", vars(args), results)


if __name__ == "__main__":
    main()
