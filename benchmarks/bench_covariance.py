"""Benchmark: exgsrc.covariance vs mne.compute_covariance (64 ch x 200 epochs).

Run: .venv/bin/python benchmarks/bench_covariance.py
"""

from __future__ import annotations

import os

# One BLAS thread for both sides: stable timings on a shared 2-core machine
# (MNE limits BLAS threads inside its covariance code anyway).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from exgsrc.covariance import compute_covariance_epochs  # noqa: E402

N_CH, N_EPOCHS, N_TIMES, SFREQ = 64, 200, 50, 250.0  # 0.2 s baselines at 250 Hz
METHODS = ("empirical", "ledoit_wolf", "shrunk", "auto")


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((N_CH, 20))
    z = rng.standard_normal((N_EPOCHS, 20, N_TIMES))
    data = np.einsum("cs,est->ect", mix, z) + 0.5 * rng.standard_normal((N_EPOCHS, N_CH, N_TIMES))
    data *= 5e-6
    data -= data.mean(axis=-1, keepdims=True)
    return data, [f"EEG{i:03d}" for i in range(N_CH)]


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    import mne

    mne.set_log_level("error")
    data, names = make_data()
    info = mne.create_info(names, SFREQ, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epo = mne.EpochsArray(data.copy(), info, baseline=None)
        epo.set_eeg_reference(projection=True)
        epo.apply_proj()

    print(f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"{N_CH} channels x {N_EPOCHS} epochs x {N_TIMES} samples (avg-ref projector)")
    print(f"{'method':<12} {'exgsrc [s]':>11} {'MNE [s]':>9} {'speed-up':>9}  chosen (ours / MNE)")
    for method in METHODS:
        t_ours, ours = best_of(lambda m=method: compute_covariance_epochs(data, names, m), 3)

        def run_mne(m=method):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return mne.compute_covariance(epo, method=m)

        t_mne, ref = best_of(run_mne, 1 if method in ("auto", "shrunk") else 3)
        chosen = f"{ours.method}/{ref.get('method', 'empirical')}"
        if "shrinkage" in ours.meta:
            chosen += f" shrinkage {ours.meta['shrinkage']:.4g}"
        print(f"{method:<12} {t_ours:11.4f} {t_mne:9.4f} {t_mne / t_ours:8.1f}x  {chosen}")


if __name__ == "__main__":
    main()
