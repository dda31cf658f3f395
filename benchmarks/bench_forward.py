"""Benchmark: exgsrc free sphere forward vs MNE-Python (numba), GSN HydroCel nets.

Run: .venv/bin/python benchmarks/bench_forward.py [--grade 5] [--channels 64 128 256]
[--repeat 5] [--warmup 1]

Both sides run single-threaded (one BLAS thread, MNE ``n_jobs=1``); MNE's
numba kernel is compiled (warm-up) before timing, then both are timed
round-robin (median and min). Two comparisons are printed:

* public API: ``make_sphere_forward_free`` vs ``mne.make_forward_solution``
  (MNE's source space prepared beforehand, outside the timing);
* kernel only: our vectorised Berg-Scherg block code vs MNE's numba
  ``_do_eeg_spherepot_coil`` on the same arrays.

Each run is written to ``benchmarks/results/bench_forward_<date>_<host>.json``.
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

from exgsrc.forward import SphereModel, make_sphere_forward_free  # noqa: E402
from exgsrc.source_space import ico_source_space  # noqa: E402

MONTAGES = {64: "GSN-HydroCel-64_1.0", 128: "GSN-HydroCel-128", 256: "GSN-HydroCel-256"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grade", type=int, default=5, help="ico grade (5 -> 10242 sources)")
    ap.add_argument("--channels", type=int, nargs="+", default=[256], choices=sorted(MONTAGES))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    print(f"load average {bc.load_average()}")
    results = []
    for n_ch in args.channels:
        results += bench(args, n_ch)
    bc.write_json("bench_forward", vars(args), results)


def bench(args, n_channels):
    import mne
    from mne.forward._compute_forward_numba import _do_eeg_spherepot_coil

    from exgsrc.forward import _auto_chunk, _free_gain

    mne.set_log_level("ERROR")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mont = mne.channels.make_standard_montage(MONTAGES[n_channels])
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
    print(
        f"--- free forward, {n_ch} channels ({MONTAGES[n_channels]}) x {n_src} sources "
        f"({3 * n_src} columns), 1 thread; median (min) of {args.repeat} after "
        f"{args.warmup} warm-up",
        flush=True,
    )
    # numba JIT before anything is timed
    small = mne.setup_volume_source_space(pos=dict(rr=src.pos[:50], nn=src.nn[:50]))
    mne.make_forward_solution(info, trans=None, src=small, bem=bem, n_jobs=1)

    res = bc.interleaved(
        {
            "exgsrc": lambda: make_sphere_forward_free(pos, src, ours_sphere, ch_names=names),
            "mne": lambda: mne.make_forward_solution(
                info, trans=None, src=msrc, bem=bem, n_jobs=1
            ),
        },
        args.repeat,
        args.warmup,
    )
    fwd = make_sphere_forward_free(pos, src, ours_sphere, ch_names=names)
    G_mne = mne.make_forward_solution(info, trans=None, src=msrc, bem=bem, n_jobs=1)["sol"]["data"]
    err = np.max(np.linalg.norm(fwd.gain - G_mne, axis=0) / np.linalg.norm(G_mne, axis=0))
    name = f"free forward {n_ch} ch x {n_src} sources"
    bc.print_row(name + " (public API)", res["exgsrc"], res["mne"],
                 extra=f"max column rel. diff {err:.1e}")  # fmt: skip
    out = [_record(name + " (public API)", n_ch, n_src, res, rel_err=err)]

    # kernel vs kernel on identical arrays
    rr = np.ascontiguousarray(src.pos)
    ws = np.ones(n_ch)
    bins = np.arange(n_ch)
    mu = np.asarray(bem["mu"])
    lam = np.asarray(bem["lambda"])
    rad = bem["layers"][0]["rad"]
    el_rel = pos - center
    r2 = np.einsum("ij,ij->i", el_rel, el_rel)
    res = bc.interleaved(
        {
            "exgsrc": lambda: _free_gain(
                el_rel, np.sqrt(r2), r2, rr - center, ours_sphere, _auto_chunk(n_ch)
            ),
            "mne": lambda: _do_eeg_spherepot_coil(rr, pos, ws, bins, center, rad, mu, lam),
        },
        args.repeat,
        args.warmup,
    )
    B = _do_eeg_spherepot_coil(rr, pos, ws, bins, center, rad, mu, lam)
    G = _free_gain(el_rel, np.sqrt(r2), r2, rr - center, ours_sphere, _auto_chunk(n_ch))
    errk = float(np.max(np.abs(G.reshape(n_ch, -1) - B.T)) / np.max(np.abs(B)))
    bc.print_row(name + " (kernel)", res["exgsrc"], res["mne"],
                 extra=f"max abs diff / max {errk:.1e}")  # fmt: skip
    out.append(_record(name + " (kernel)", n_ch, n_src, res, rel_err=errk))
    return out


def _record(name, n_ch, n_src, res, **extra):
    rec = {
        "section": "forward",
        "name": name,
        "n_channels": n_ch,
        "n_sources": n_src,
        "timings": res,
        "ratio_median": res["mne"]["median"] / res["exgsrc"]["median"],
        "ratio_min": res["mne"]["min"] / res["exgsrc"]["min"],
        "load_average": bc.load_average(),
    }
    rec.update({k: float(v) for k, v in extra.items()})
    return rec


if __name__ == "__main__":
    main()
