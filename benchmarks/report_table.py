"""Markdown rows for README's "Measured" table from the newest benchmark JSONs.

Run: ``.venv/bin/python benchmarks/report_table.py [--bench bench_inverse ...]
[--files a.json b.json]``

Reads ``benchmarks/results/<bench>_<date>_<host>.json`` (written by
bench_inverse.py, bench_covariance.py, bench_forward.py); when several runs
measured the same row (same name and channel count), the newest wins, so partial
runs (one channel count, one section) combine. Prints one row per measurement:
exgsrc and MNE as ``median (min)`` and the ratio of medians (MNE / exgsrc);
apply rows add the ratio to one plain ``kernel @ data`` product.

``--bench bench_cohort`` prints the cohort benchmark's own table instead
(bench_cohort.py: whole-workflow runs and dry runs; the newest run of each
kind and number of subjects; profiled dry runs left out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCHES = ("bench_forward", "bench_covariance", "bench_inverse")
COHORT = "bench_cohort"


def _t(s: float) -> str:
    if s >= 1.0:
        return f"{s:.3g} s"
    return f"{s * 1e3:.3g} ms"


def _mm(summary: dict) -> str:
    return f"{_t(summary['median'])} ({_t(summary['min'])})"


def load(bench: str, files=None) -> list[dict]:
    """Newest record of each (name, n_channels, n_sources, --threads) over the bench's JSONs."""
    paths = sorted(files) if files else sorted(RESULTS.glob(f"{bench}_*.json"))
    rows: dict = {}
    for path in paths:
        rec = json.loads(Path(path).read_text())
        if rec.get("bench") != bench:
            continue
        for r in rec["results"]:
            threads = rec["args"].get("threads")
            key = (r["name"], r.get("n_channels"), r.get("n_sources"), threads)
            r = dict(r, _date=rec["date"], _host=rec["machine"]["host"], _args=rec["args"])
            if key not in rows or rows[key]["_date"] <= r["_date"]:
                rows[key] = r
    return sorted(rows.values(), key=lambda r: (r.get("n_channels") or 0, r["_date"]))


def row(bench: str, r: dict) -> str:
    t = r["timings"]
    n_src = r.get("n_sources")
    src = ""
    if n_src and "sources" not in r["name"]:
        src = ", " + f"{n_src:,}".replace(",", " ") + " sources"
    ch = ""
    if r.get("n_channels") and " ch" not in r["name"]:
        ch = f", {r['n_channels']} ch"
    desc = f"`{bench}.py`: {r['name']}{ch}{src}"
    ratio = f"{r['ratio_median']:.2g}x" if r["ratio_median"] < 10 else f"{r['ratio_median']:.0f}x"
    extra = []
    if r.get("rel_err"):
        err = r["rel_err"]
        if isinstance(err, dict):
            err = max(err.values())
        extra.append(f"rel. err {err:.0e}")
    if "exgsrc_over_matmul" in r:
        mm = r["timings"]["matmul"]["median"]
        reuse = r["reuse"]
        extra.append(
            f"plain matmul {_t(mm)}: exgsrc/matmul {r['exgsrc_over_matmul']['fresh']:.2f} "
            f"(into a reused `out`: {_t(reuse['exgsrc']['median'])} vs "
            f"{_t(reuse['matmul']['median'])}, {r['exgsrc_over_matmul']['reuse']:.2f})"
        )
        if r.get("first_call"):
            first = r["first_call"]
            extra.append(
                "first call in a new process "
                + "/".join(_t(x) for x in first["exgsrc"])
                + " (matmul "
                + "/".join(_t(x) for x in first["matmul"])
                + ")"
            )
    if r.get("n_iter"):
        extra.append(f"{r['n_iter']} iterations")
    if r.get("_args", {}).get("threads"):
        extra.append(f"{r['_args']['threads']} BLAS thread(s) both sides")
    if r.get("load_average"):
        extra.append(f"load {r['load_average'][0]:.1f}")
    if extra:
        ratio += "; " + "; ".join(extra)
    return f"| {desc} | {_mm(t['exgsrc'])} | {_mm(t['mne'])} | {ratio} |"


def load_cohort(files=None) -> list[dict]:
    """Newest record of each (run kind, subjects, cores) of bench_cohort.py's JSONs."""
    paths = sorted(files) if files else sorted(RESULTS.glob(f"{COHORT}_*.json"))
    rows: dict = {}
    for path in paths:
        rec = json.loads(Path(path).read_text())
        if rec.get("bench") != COHORT:
            continue
        for r in rec["results"]:
            if r["name"] == "cohort dry run" and all(x.get("profiled") for x in r["runs"]):
                continue
            key = (r["name"], r["n_subjects"], r.get("cores"))
            r = dict(r, _date=rec["date"], _load_end=rec.get("load_average_end"))
            if key not in rows or rows[key]["_date"] <= r["_date"]:
                rows[key] = r
    return sorted(rows.values(), key=lambda r: (r["name"], r["n_subjects"]))


def cohort_rows(records: list[dict]) -> list[str]:
    """Markdown table of bench_cohort.py's runs (whole runs, then dry runs)."""
    out = [
        "| cohort run | jobs | wall total (per subject) | CPU time | peak memory: "
        "largest job / whole run | no-op rerun | load average (1 min) during run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["name"] != "cohort run":
            continue
        run, noop = r["run"], r["noop"]
        load = run.get("load_1min", {})
        out.append(
            f"| {r['n_subjects']} subjects, `--cores {r['cores']}` | {r['n_jobs']} | "
            f"{_t(r['wall_s'])} ({_t(r['wall_per_subject_s'])}) | {_t(r['cpu_s'])} | "
            f"{r['max_job_rss_mb']:.0f} MB ({r['max_job_rss_rule']}) / "
            f"{run['peak_tree_rss_mb']:.0f} MB | {_t(noop['wall_s'])} | "
            f"mean {load.get('mean', float('nan')):.1f}, max {load.get('max', float('nan')):.1f} |"
        )
    dry = [r for r in records if r["name"] == "cohort dry run"]
    if dry:
        out += [
            "",
            "| dry run (`snakemake -n`) | jobs | wall best (median) | CPU best | "
            "Snakemake alone, same number of jobs: wall / CPU | load before |",
        ]
        out.append("|---|---|---|---|---|---|")
        for r in dry:
            plain = [x for x in r["runs"] if not x.get("profiled")]
            loads = [x["load_before"][0] for x in plain]
            cpu = min(x["cpu_user_s"] + x["cpu_sys_s"] for x in plain)
            floor = r.get("floor")
            fl = (
                f"{_t(floor['wall_s'])} / {_t(floor['cpu_user_s'] + floor['cpu_sys_s'])}"
                if floor
                else "-"
            )
            out.append(
                f"| {r['n_subjects']} subjects | {r['n_jobs']} | "
                f"{_t(r['wall_s']['min'])} ({_t(r['wall_s']['median'])}) | {_t(cpu)} | {fl} | "
                f"{min(loads):.1f}-{max(loads):.1f} |"
            )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", nargs="+", default=list(BENCHES), choices=(*BENCHES, COHORT))
    ap.add_argument("--files", nargs="+", default=None, help="use these JSONs only")
    args = ap.parse_args()
    benches = [b for b in args.bench if b != COHORT]
    if benches:
        print("| benchmark | exgsrc median (min) | MNE median (min) | MNE / exgsrc |")
        print("|---|---|---|---|")
        for bench in benches:
            for r in load(bench, args.files):
                print(row(bench, r))
    if COHORT in args.bench:
        if benches:
            print()
        print("\n".join(cohort_rows(load_cohort(args.files))))


if __name__ == "__main__":
    main()
