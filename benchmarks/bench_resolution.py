"""Benchmark: blocked resolution metrics (exgsrc) vs MNE's full-matrix path.

All 12 metrics (PSF and CTF x peak_err, cog_err, sd_ext, maxrad_ext, peak_amp,
sum_amp) of one fixed-orientation sLORETA operator, on an ico grade 5
(10 242 sources) and grade 6 (40 962 sources) sphere with 64 and 128
electrodes. Both sides get the same gain (exgsrc sphere forward) and kernel
(exgsrc.inverse if available, else a numpy sLORETA), so only the resolution
part is timed:

* exgsrc: ``resolution_metrics_from_kernel`` (blocks, R never formed);
* MNE: ``R = K @ G`` then ``mne.minimum_norm.resolution_metrics`` for each
  metric (needs the whole R; not run at grade 6, where R alone is 13 GB,
  unless ``--mne-grade6``).

Every case runs in its own subprocess; peak memory is the resident high-water
mark (VmHWM) of the timed part, reset just before it.

Run: ``.venv/bin/python benchmarks/bench_resolution.py [--quick] [--mne-grade6]
[--blas-threads N]`` (``--blas-threads`` sets OPENBLAS/OMP/MKL_NUM_THREADS for
both sides; on a busy machine 1 thread is often faster than the default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CENTER = np.array([0.0, 0.0, 0.04])
HEAD_RADIUS = 0.09
SRC_RADIUS = 0.07
LAMBDA2 = 1.0 / 9.0


def _electrodes(n):
    """Quasi-uniform electrodes (Fibonacci spiral) on the scalp above z = -0.3 R."""
    k = np.arange(4 * n) + 0.5
    z = 1.0 - 2.0 * k / (4 * n)
    phi = np.pi * (1.0 + 5**0.5) * k
    v = np.column_stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z])
    v = v[v[:, 2] > -0.3]
    v = v[np.linspace(0, len(v) - 1, n).round().astype(int)]
    return CENTER + HEAD_RADIUS * v


def _numpy_sloreta(G, sigma=2e-7):
    """Fixed-orientation sLORETA with an average reference and white noise (no depth).

    Whitened gain scaled to unit mean eigenvalue (as MNE scales the source
    covariance); kernel rows divided by sqrt(diag(R_MNE)).
    """
    n_ch = G.shape[0]
    P = np.eye(n_ch) - 1.0 / n_ch
    w, U = np.linalg.eigh(sigma**2 * P)
    keep = w > w.max() * 1e-10
    W = (U[:, keep] / np.sqrt(w[keep])).T  # (rank, n_ch)
    Gw = W @ G
    Gw *= np.sqrt(Gw.shape[0] / np.einsum("ij,ij->", Gw, Gw))
    u, s, vt = np.linalg.svd(Gw, full_matrices=False)
    f = s / (s**2 + LAMBDA2)
    K = (vt.T * f) @ u.T
    K /= np.sqrt(np.einsum("ki,k->i", vt**2, s * f))[:, None]
    return K @ W


def _problem(grade, n_ch):
    """Gain (our sphere forward) and a fixed sLORETA kernel; returns (G, K, pos, kernel_src)."""
    from exgsrc.forward import SphereModel, make_sphere_forward
    from exgsrc.source_space import ico_source_space

    src = ico_source_space(grade, SRC_RADIUS, center=CENTER)
    el = _electrodes(n_ch)
    names = [f"E{i:03d}" for i in range(n_ch)]
    fwd = make_sphere_forward(el, src, SphereModel.mne_default(), ch_names=names)
    try:
        from exgsrc.covariance import NoiseCov
        from exgsrc.inverse import make_inverse_operator, prepare_inverse

        cov = NoiseCov(
            data=np.eye(n_ch) * (2e-7) ** 2, ch_names=tuple(names), nfree=1000, method="ad_hoc"
        )
        inv = make_inverse_operator(fwd, cov, loose=0.0, depth=None, fixed=True)
        prep = prepare_inverse(inv, nave=1, lambda2=LAMBDA2, method="sLORETA")
        order = [list(fwd.ch_names).index(c) for c in prep.ch_names]
        return fwd.gain[order], np.asarray(prep.kernel), src.pos, "exgsrc.inverse"
    except Exception as exc:  # inverse layer not available yet: numpy sLORETA
        return fwd.gain, _numpy_sloreta(fwd.gain), src.pos, f"numpy sLORETA ({type(exc).__name__})"


def _reset_peak():
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _fake_surface_src(pos):
    """Two 'surf' hemispheres over our positions, so MNE's metric code accepts them."""
    import mne

    half = len(pos) // 2
    hemis = []
    for verts in (np.arange(half), np.arange(half, len(pos))):
        hemis.append(
            dict(
                type="surf",
                rr=pos,
                vertno=verts,
                nuse=len(verts),
                np=len(pos),
                id=101,
                coord_frame=mne.io.constants.FIFF.FIFFV_COORD_HEAD,
            )
        )
    return mne.SourceSpaces(hemis)


def run_case(side, grade, n_ch):
    """One measurement (in a fresh process)."""
    from exgsrc.resolution import ALL_METRICS, resolution_metrics_from_kernel

    G, K, pos, ksrc = _problem(grade, n_ch)
    if side == "mne":
        import mne
        from mne.minimum_norm import resolution_metrics

        mne.set_log_level("ERROR")
        surf = _fake_surface_src(pos)
    base = _rss_mb()
    exact_peak = _reset_peak()
    t0 = time.perf_counter()
    c0 = time.process_time()
    if side == "ours":
        ds = resolution_metrics_from_kernel(G, K, pos, as_xarray=False)
        ple = float(np.mean(ds.values["psf_peak_err"]))
        sd = float(np.mean(ds.values["psf_sd_ext"]))
    else:
        R = K @ G
        out = {}
        for name in ALL_METRICS:
            func, metric = name.split("_", 1)
            out[name] = resolution_metrics(R, surf, function=func, metric=metric).data[:, 0]
        ple = float(np.mean(out["psf_peak_err"])) / 100.0
        sd = float(np.mean(out["psf_sd_ext"])) / 100.0
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = _peak_mb()
    return dict(
        side=side,
        grade=grade,
        n_sources=len(pos),
        n_ch=n_ch,
        seconds=dt,
        cpu_seconds=cpu,
        peak_mb=peak,
        baseline_mb=base,
        peak_exact=exact_peak,
        mean_psf_ple_m=ple,
        mean_psf_sd_m=sd,
        kernel=ksrc,
    )


def main(argv):
    if len(argv) >= 1 and argv[0] == "--case":
        side, grade, n_ch = argv[1], int(argv[2]), int(argv[3])
        print(json.dumps(run_case(side, grade, n_ch)))
        return
    quick = "--quick" in argv
    mne_g6 = "--mne-grade6" in argv
    env = dict(os.environ)
    if "--blas-threads" in argv:
        n_thr = argv[argv.index("--blas-threads") + 1]
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = n_thr
    blas = env.get("OPENBLAS_NUM_THREADS", "default")
    print(f"BLAS threads: {blas}; CPUs: {os.cpu_count()}", flush=True)
    grades = (4,) if quick else (5, 6)
    chans = (64,) if quick else (64, 128)
    rows = []
    for grade in grades:
        for n_ch in chans:
            for side in ("ours", "mne"):
                if side == "mne" and grade >= 6 and not mne_g6:
                    n = 10 * 4**grade + 2
                    rows.append(
                        dict(
                            side="mne",
                            grade=grade,
                            n_ch=n_ch,
                            n_sources=n,
                            skipped=True,
                            note=f"full R needs {8 * n * n / 1e9:.1f} GB before any copy",
                        )
                    )
                    continue
                cmd = [sys.executable, __file__, "--case", side, str(grade), str(n_ch)]
                res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if res.returncode != 0:
                    rows.append(
                        dict(
                            side=side,
                            grade=grade,
                            n_ch=n_ch,
                            skipped=True,
                            note=f"failed: {res.stderr.strip().splitlines()[-1:]}",
                        )
                    )
                else:
                    rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print_row(rows[-1])
    print()
    print(f"summary (same G, K; all 12 PSF+CTF metrics; BLAS threads: {blas})")
    print(
        f"{'grade':>5} {'n_src':>6} {'n_ch':>4} | {'exgsrc s':>8} {'cpu s':>7} {'MB':>6} | "
        f"{'MNE s':>8} {'cpu s':>7} {'MB':>6} | {'time x':>6} {'cpu x':>6} {'mem x':>6}"
    )
    for grade in grades:
        for n_ch in chans:
            o = next(
                r
                for r in rows
                if r["side"] == "ours" and r["grade"] == grade and r["n_ch"] == n_ch
            )
            m = next(
                r for r in rows if r["side"] == "mne" and r["grade"] == grade and r["n_ch"] == n_ch
            )
            if o.get("skipped"):
                print(f"{grade:>5} {'':>6} {n_ch:>4} | exgsrc failed: {o['note']}")
                continue
            if m.get("skipped"):
                mtxt = f"{'n/a':>8} {'n/a':>7} {'n/a':>6} |   ({m['note']})"
            else:
                mtxt = (
                    f"{m['seconds']:8.2f} {m['cpu_seconds']:7.2f} {m['peak_mb']:6.0f} | "
                    f"{m['seconds'] / o['seconds']:6.2f} "
                    f"{m['cpu_seconds'] / o['cpu_seconds']:6.2f} "
                    f"{m['peak_mb'] / o['peak_mb']:6.2f}"
                )
            print(
                f"{grade:>5} {o['n_sources']:>6} {n_ch:>4} | {o['seconds']:8.2f} "
                f"{o['cpu_seconds']:7.2f} {o['peak_mb']:6.0f} | {mtxt}"
            )
    print(
        "MB = peak resident memory of the timed part (whole process, incl. G and K); "
        "cpu = process CPU time (less sensitive to a busy machine);"
        " ratio = MNE / exgsrc."
    )


def print_row(r):
    if r.get("skipped"):
        print(f"[{r['side']:>4}] grade {r['grade']} {r['n_ch']} ch: skipped - {r['note']}")
    else:
        print(
            f"[{r['side']:>4}] grade {r['grade']} ({r['n_sources']} src) {r['n_ch']} ch: "
            f"{r['seconds']:.2f} s (cpu {r['cpu_seconds']:.2f} s), peak {r['peak_mb']:.0f} MB (baseline {r['baseline_mb']:.0f}),"
            f" mean PSF PLE {1000 * r['mean_psf_ple_m']:.2f} mm, "
            f"SD {1000 * r['mean_psf_sd_m']:.2f} mm, kernel: {r['kernel']}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
