"""Workflow benchmark: whole demo run, no-op rerun, and the DAG check of a large cohort.

Run: ``.venv/bin/python benchmarks/bench_workflow.py [--quick]``

1. The default demo (6 subjects x 3 conditions x 3 methods, ico grade 3) from
   scratch in a temporary folder, with ``--cores 2``: wall time (goal < 5 min).
2. A no-op rerun of it (DAG check only): ``snakemake -n`` and a real no-op run.
3. A 100-subject x 4-condition demo config whose outputs all exist (created as
   empty files with equal timestamps): wall time of the no-op DAG check
   (goal < 5 s; Snakemake's own floor for ~5,000 jobs is about 2 s), compared
   with Snakemake alone on a trivial Snakefile with the same number of jobs.

``--quick`` skips step 1-2 (only the DAG check).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"


def sm(workdir, *args, snakefile=SNAKEFILE, check=True):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=workdir)
    dt = time.perf_counter() - t0
    if check and res.returncode != 0:
        sys.exit(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return dt, res


def bench_demo(tmp: Path) -> None:
    wd = tmp / "demo"
    wd.mkdir()
    cfg = ROOT / "config" / "config.yaml"
    dt, _ = sm(wd, "--cores", "2", "--configfile", str(cfg))
    print(f"whole demo run (6 sub x 3 cond x 3 methods, 2 cores): {dt:8.1f} s   (goal < 300 s)")
    dt_n, res = sm(wd, "-n", "--configfile", str(cfg))
    assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-2000:]
    print(f"no-op rerun, dry run (-n):                          {dt_n:8.2f} s")
    dt_r, _ = sm(wd, "--cores", "2", "--configfile", str(cfg))
    print(f"no-op rerun, real invocation:                       {dt_r:8.2f} s")
    loc = wd / "results" / "group" / "task-demo_localisation.tsv"
    if loc.exists():
        import csv

        rows = list(csv.DictReader(loc.open(), delimiter="\t"))
        for m in sorted({r["method"] for r in rows}):
            e = [float(r["error_mm"]) for r in rows if r["method"] == m and r["status"] == "ok"]
            print(
                f"  demo localisation error {m:8s}: mean {sum(e) / len(e):5.1f} mm, max {max(e):5.1f} mm"
            )


def _touch_all(wd: Path, cfg: Path) -> int:
    _, res = sm(wd, "--summary", "--configfile", str(cfg), "--cores", "1")
    files = []
    for line in res.stdout.splitlines()[1:]:
        path = line.split("\t")[0].strip()
        if path and not path.startswith(("Assuming", "Building")) and "/" in path:
            files.append(wd / path)
    now = time.time() - 60
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
        os.utime(f, (now, now))
    return len(files)


def bench_large_dag(tmp: Path) -> None:
    wd = tmp / "large"
    wd.mkdir()
    cfg = wd / "large.yaml"
    cfg.write_text(
        "demo: {n_subjects: 100, conditions: [auditory, visual, somatosensory, motor]}\n"
        "inverse: {methods: [dSPM, sLORETA, eLORETA]}\n"
    )
    _, res = sm(wd, "-n", "--configfile", str(cfg), "--quiet", "rules")
    n_jobs = next(int(ln.split()[1]) for ln in res.stdout.splitlines() if ln.startswith("total"))
    n_files = _touch_all(wd, cfg)
    dts = []
    for _ in range(3):
        dt, res = sm(wd, "-n", "--configfile", str(cfg))
        assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]
        dts.append(dt)
    # Snakemake's floor: a trivial Snakefile with the same number of (up-to-date) jobs
    triv = tmp / "trivial"
    triv.mkdir()
    (triv / "Snakefile").write_text(
        f"N = range({n_jobs})\n"
        "rule all:\n    input: expand('out/{i}.txt', i=N)\n"
        "rule make:\n    output: 'out/{i}.txt'\n    shell: 'touch {output}'\n"
    )
    (triv / "out").mkdir()
    for i in range(n_jobs):
        (triv / "out" / f"{i}.txt").touch()
    floor = []
    for _ in range(3):
        dt, _ = sm(triv, "-n", snakefile=triv / "Snakefile")
        floor.append(dt)
    print(
        f"no-op DAG check, 100 sub x 4 cond x 3 methods ({n_jobs} jobs, {n_files} files): "
        f"{min(dts):6.2f} s (best of 3; goal < 5 s)"
    )
    print(f"snakemake alone, trivial Snakefile, {n_jobs} up-to-date jobs:  {min(floor):6.2f} s")
    print(f"ratio exgsrc / snakemake floor: {min(dts) / min(floor):5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the large DAG check")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="exgsrc-bench-") as tmp:
        tmp = Path(tmp)
        if not args.quick:
            bench_demo(tmp)
        bench_large_dag(tmp)


if __name__ == "__main__":
    main()
