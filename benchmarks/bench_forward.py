"""Benchmark: exgsrc free sphere forward vs MNE-Python (numba) at 256 ch x 10242 sources.

Run: .venv/bin/python benchmarks/bench_forward.py [--grade 5] [--repeat 3]

Both sides run single-threaded (one BLAS thread, MNE ``n_jobs=1``); MNE's
numba kernel is compiled (warm-up) before timing. Two comparisons are printed:

* public API: ``make_sphere_forward_free`` vs ``mne.make_forward_solution``
  (MNE's source space prepared beforehand, outside the timing);
* kernel only: our vectorised Berg-Scherg block code vs MNE's numba
  ``_do_eeg_spherepot_coil`` on the same arrays.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from exgsrc.forward import SphereModel, make_sphere_forward_free  # noqa: E402
from exgsrc.source_space import ico_source_space  # noqa: E402


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grade", type=int, default=5, help="ico grade (5 -> 10242 sources)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import mne
    from mne.forward._compute_forward_numba import _do_eeg_spherepot_coil

    mne.set_log_level("ERROR")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mont = mne.channels.make_standard_montage("GSN-HydroCel-256")
    ch = mont.get_positions()["ch_pos"]
    names = list(ch)
    pos = np.array([ch[n] for n in names])
    sphere = SphereModel.mne_default().fit(pos)  # 4-shell MNE layout, fitted centre/radius
    center, R = np.array(sphere.center), sphere.scalp_radius
    pos = center + R * (pos - center) / np.linalg.norm(pos - center, axis=1, keepdims=True)
    src = ico_source_space(args.grade, 0.8 * sphere.inner_radius, center)

    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(
        mne.channels.make_dig_montage(dict(zip(names, pos, strict=True)), coord_frame="head")
    )
    bem = mne.make_sphere_model(r0=center, head_radius=R)
    msrc = mne.setup_volume_source_space(pos=dict(rr=src.pos, nn=src.nn))
    ours_sphere = SphereModel.mne_default(R, center).with_berg_scherg()
    np.testing.assert_allclose(ours_sphere.mu, bem["mu"], atol=1e-12)

    n_ch, n_src = len(names), src.n_sources
    print(f"free forward, {n_ch} channels x {n_src} sources ({3 * n_src} columns), 1 thread")

    # warm-up (numba JIT, caches)
    small = mne.setup_volume_source_space(pos=dict(rr=src.pos[:50], nn=src.nn[:50]))
    mne.make_forward_solution(info, trans=None, src=small, bem=bem, n_jobs=1)
    make_sphere_forward_free(pos, src, ours_sphere, ch_names=names)

    t_ours, fwd = best_of(
        lambda: make_sphere_forward_free(pos, src, ours_sphere, ch_names=names), args.repeat
    )
    t_mne, mfwd = best_of(
        lambda: mne.make_forward_solution(info, trans=None, src=msrc, bem=bem, n_jobs=1),
        args.repeat,
    )
    G_mne = mfwd["sol"]["data"]
    err = np.max(np.linalg.norm(fwd.gain - G_mne, axis=0) / np.linalg.norm(G_mne, axis=0))
    print(
        f"  public API : exgsrc {t_ours:7.3f} s   MNE {t_mne:7.3f} s   MNE/exgsrc = "
        f"{t_mne / t_ours:5.2f}x   (max column rel. diff {err:.1e})"
    )

    # kernel vs kernel on identical arrays
    rr = np.ascontiguousarray(src.pos)
    ws = np.ones(n_ch)
    bins = np.arange(n_ch)
    mu = np.asarray(bem["mu"])
    lam = np.asarray(bem["lambda"])
    rad = bem["layers"][0]["rad"]
    t_mk, B = best_of(
        lambda: _do_eeg_spherepot_coil(rr, pos, ws, bins, center, rad, mu, lam), args.repeat
    )
    from exgsrc.forward import _auto_chunk, _free_gain

    el_rel = pos - center
    r2 = np.einsum("ij,ij->i", el_rel, el_rel)
    t_ok, G = best_of(
        lambda: _free_gain(el_rel, np.sqrt(r2), r2, rr - center, ours_sphere, _auto_chunk(n_ch)),
        args.repeat,
    )
    errk = np.max(np.abs(G.reshape(n_ch, -1) - B.T)) / np.max(np.abs(B))
    print(
        f"  kernel     : exgsrc {t_ok:7.3f} s   MNE {t_mk:7.3f} s   MNE/exgsrc = "
        f"{t_mk / t_ok:5.2f}x   (max abs diff / max {errk:.1e})"
    )


if __name__ == "__main__":
    main()
