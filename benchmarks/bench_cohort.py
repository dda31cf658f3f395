"""Cohort benchmark: the whole workflow on N simulated subjects, and the DAG of 1 000.

Run::

    .venv/bin/python benchmarks/bench_cohort.py --cache /tmp/exgsrc-cohort --subjects 200
    .venv/bin/python benchmarks/bench_cohort.py --cache /tmp/exgsrc-cohort --dry-run-subjects 1000

Full run (default): the demo simulator (:func:`exgsrc.simulate.make_demo_bids`, the
default demo's settings: 32 channels, 3 conditions, 40 trials each) writes the
subjects once into ``<cache>/sim`` (re-used by later runs that need at most as many
subjects; the files of subject ``i`` depend only on the seed and ``i``). A scratch
folder gets a BIDS root of hard links to the first N subjects, and the project's
Snakefile runs on it (``snakemake -s Snakefile --directory <scratch> --cores C
--config bids_root=<root>``: a real dataset, not the embedded demo, so subjects,
task and conditions go through BIDS discovery). Printed and written to
``benchmarks/results/bench_cohort_<date>_<host>.json``:

- wall time, total and per subject;
- the number of jobs;
- CPU time (user + system of every process of the run, from ``wait4``) and the
  sum of the jobs' ``cpu_time`` in Snakemake's ``benchmark:`` files;
- peak memory: the largest ``max_rss`` of any job (``benchmark:`` files, per
  rule), the largest resident size of any process of the run (``wait4``), and the
  peak of the summed resident size of the whole process tree (sampled every
  ``--sample`` s);
- the 1-minute load average during the run (sampled: mean and max), and before
  and after (the machine may be shared: a load above the core count slows
  every job);
- the no-op rerun: a second ``snakemake --cores C`` with nothing to do.

``--dry-run-subjects M``: fabricates M subjects cheaply (hard links to the cached
simulated subjects' files under new subject labels: valid BIDS files, whose
content is not read by a dry run except ``events.tsv``) and times
``snakemake -n`` (DAG building from scratch, every job to run) ``--repeat`` times;
the goal of issue 15 is under 10 s for 1 000 subjects. ``--profile FILE`` runs
the last repeat under ``cProfile`` (``python -m cProfile -o FILE -m snakemake``).
``--floor`` also times ``snakemake -n`` on a trivial Snakefile with as many jobs
(chained ``script:`` rules per subject, no input functions): Snakemake's own cost
for a DAG of that size, which no change on the workflow's side takes away.

Both modes print the machine's load average: on the shared 2-core machine, compare
numbers measured at similar load.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
#: simulator settings of the cache (the default demo's); changing them re-simulates
SIM_SETTINGS = {
    "seed": 0,
    "n_channels": 32,
    "conditions": ["auditory", "visual", "somatosensory"],
    "n_trials": 40,
    "sfreq": 250.0,
}
_STEPS_RE = re.compile(r"(\d+) of (\d+) steps \(100%\) done")
_TOTAL_RE = re.compile(r"^total\s+(\d+)\s*$", re.M)


def subject_label(i: int) -> str:
    """Label of the i-th subject (0-based), as the demo simulator writes it."""
    return f"{i + 1:02d}"


def simulate_cache(cache: Path, n_subjects: int) -> Path:
    """Simulated subjects in ``<cache>/sim`` (at least ``n_subjects``); made once.

    Parameters
    ----------
    cache : Path
        Cache folder (created if missing).
    n_subjects : int
        Subjects needed.

    Returns
    -------
    Path
        The BIDS root ``<cache>/sim``.
    """
    sim = cache / "sim"
    stamp = cache / "sim.json"
    if stamp.is_file():
        info = json.loads(stamp.read_text())
        if info.get("settings") == SIM_SETTINGS and info.get("n_subjects", 0) >= n_subjects:
            return sim
    from exgsrc.simulate import make_demo_bids

    print(f"simulating {n_subjects} subjects into {sim} (once) ...", flush=True)
    t0 = time.perf_counter()
    if sim.exists():
        shutil.rmtree(sim)
    s = SIM_SETTINGS
    make_demo_bids(
        sim,
        n_subjects=n_subjects,
        conditions=s["conditions"],
        seed=s["seed"],
        n_channels=s["n_channels"],
        n_trials=s["n_trials"],
        sfreq=s["sfreq"],
    )
    dt = time.perf_counter() - t0
    stamp.write_text(
        json.dumps({"settings": SIM_SETTINGS, "n_subjects": n_subjects, "seconds": dt})
    )
    print(f"simulated {n_subjects} subjects in {dt:.1f} s ({dt / n_subjects:.2f} s each)")
    return sim


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def make_root(sim: Path, root: Path, n_subjects: int, n_sources: int | None = None) -> None:
    """A BIDS root of ``n_subjects`` subjects linked to the simulated ones.

    Subject ``i`` is a hard link of simulated subject ``i % n_sources`` under the
    label :func:`subject_label` ``(i)`` (``n_sources`` None: ``i`` itself).

    Parameters
    ----------
    sim : Path
        The simulated BIDS root (:func:`simulate_cache`).
    root : Path
        New BIDS root (must not exist).
    n_subjects : int
        Subjects of the new root.
    n_sources : int | None
        Simulated subjects to cycle through.
    """
    root.mkdir(parents=True)
    for name in ("dataset_description.json", "participants.json", "README"):
        _link(sim / name, root / name)
    rows = ["participant_id"]
    for i in range(n_subjects):
        src_lab = subject_label(i if n_sources is None else i % n_sources)
        lab = subject_label(i)
        src = sim / f"sub-{src_lab}" / "eeg"
        dst = root / f"sub-{lab}" / "eeg"
        dst.mkdir(parents=True)
        for f in src.iterdir():
            _link(f, dst / f.name.replace(f"sub-{src_lab}_", f"sub-{lab}_", 1))
        rows.append(f"sub-{lab}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")


class Sampler(threading.Thread):
    """Samples the 1-minute load average and the summed RSS of a process tree."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.load: list[float] = []
        self.peak_tree_rss = 0
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self):
        import psutil

        while not self._halt.is_set():
            self.load.append(os.getloadavg()[0])
            try:
                top = psutil.Process(self.pid)
                procs = [top, *top.children(recursive=True)]
            except psutil.Error:
                procs = []
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_tree_rss = max(self.peak_tree_rss, rss)
            self.max_procs = max(self.max_procs, len(procs))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


def run_snakemake(
    workdir: Path, args: list[str], log: Path, sample: float | None = None, profile=None
) -> dict:
    """Run Snakemake in ``workdir``; wall time, rusage of the process tree, samples.

    Parameters
    ----------
    workdir : Path
        ``--directory`` of the run.
    args : list of str
        Further arguments.
    log : Path
        Stdout and stderr of the run.
    sample : float | None
        Sampling interval (s) of load and tree RSS; None: no sampling.
    profile : Path | None
        Run under cProfile, writing this file.

    Returns
    -------
    dict
        ``wall_s``, ``cpu_user_s``, ``cpu_sys_s``, ``max_rss_any_process_mb``,
        ``returncode``, ``log``, and with ``sample``: ``load_1min`` (mean, max,
        n), ``peak_tree_rss_mb``, ``max_processes``.
    """
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    cmd = prefix + ["-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir)] + args
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
        sampler = Sampler(proc.pid, sample) if sample else None
        if sampler:
            sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler:
            sampler.stop()
    res = {
        "wall_s": wall,
        "cpu_user_s": ru.ru_utime,
        "cpu_sys_s": ru.ru_stime,
        "max_rss_any_process_mb": ru.ru_maxrss / 1024,  # Linux: kB
        "returncode": proc.returncode,
        "log": str(log),
    }
    if sampler:
        ld = sampler.load or [os.getloadavg()[0]]
        res["load_1min"] = {"mean": sum(ld) / len(ld), "max": max(ld), "n": len(ld)}
        res["peak_tree_rss_mb"] = sampler.peak_tree_rss / 2**20
        res["max_processes"] = sampler.max_procs
    return res


def job_benchmarks(bench_dir: Path) -> dict:
    """Per rule: jobs, sum of ``cpu_time`` and ``s``, largest ``max_rss`` (MB), from
    Snakemake's ``benchmark:`` TSVs under ``bench_dir``."""
    rules: dict[str, dict] = {}
    for path in sorted(bench_dir.rglob("*.tsv")):
        rule = path.parent.name if path.parent != bench_dir else path.stem
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        for r in rows:
            d = rules.setdefault(
                rule, {"jobs": 0, "cpu_time_s": 0.0, "wall_s": 0.0, "max_rss_mb": 0.0}
            )
            d["jobs"] += 1

            def num(key, r=r):
                try:
                    return float(r.get(key, "nan"))
                except ValueError:  # "NA"
                    return float("nan")

            cpu, s, rss = num("cpu_time"), num("s"), num("max_rss")
            d["cpu_time_s"] += cpu if cpu == cpu else 0.0
            d["wall_s"] += s if s == s else 0.0
            if rss == rss:
                d["max_rss_mb"] = max(d["max_rss_mb"], rss)
    return rules


def _fmt_s(s: float) -> str:
    return f"{s:8.1f} s" if s >= 10 else f"{s:8.2f} s"


def full_run(args) -> None:
    sim = simulate_cache(args.cache, args.subjects)
    scratch = Path(tempfile.mkdtemp(prefix="exgsrc-cohort-", dir=args.scratch))
    bids = scratch / "bids"
    make_root(sim, bids, args.subjects)
    config = ["--config", f"bids_root={bids}", *args.config]
    base = ["--cores", str(args.cores), *config, *args.snakemake_args]
    print(
        f"{args.subjects} subjects, --cores {args.cores}, scratch {scratch}; load before "
        f"{load_average()}",
        flush=True,
    )
    load_before = load_average()
    run = run_snakemake(scratch, base, scratch / "run.log", sample=args.sample)
    text = Path(run["log"]).read_text()
    if run["returncode"] != 0:
        sys.exit(f"snakemake failed (see {run['log']}):\n{text[-3000:]}")
    load_after = load_average()
    steps = _STEPS_RE.findall(text)
    total = _TOTAL_RE.search(text)
    n_jobs = int(steps[-1][1]) if steps else (int(total.group(1)) if total else None)
    noop = run_snakemake(scratch, base, scratch / "noop.log", sample=args.sample)
    noop_text = Path(noop["log"]).read_text()
    if noop["returncode"] != 0 or "Nothing to be done" not in noop_text:
        print(f"warning: the rerun was not a no-op (see {noop['log']})")
    jobs = job_benchmarks(scratch / "results" / "benchmarks")
    job_cpu = sum(d["cpu_time_s"] for d in jobs.values())
    worst = max(jobs.items(), key=lambda kv: kv[1]["max_rss_mb"]) if jobs else None
    cpu = run["cpu_user_s"] + run["cpu_sys_s"]
    print(f"wall time, total:                 {_fmt_s(run['wall_s'])}")
    print(f"wall time per subject:            {_fmt_s(run['wall_s'] / args.subjects)}")
    print(f"jobs:                             {n_jobs}")
    print(f"wall time per job (x cores):      {_fmt_s(run['wall_s'] * args.cores / n_jobs)}")
    print(
        f"CPU time (all processes):         {_fmt_s(cpu)}  "
        f"(user {run['cpu_user_s']:.0f} s, sys {run['cpu_sys_s']:.0f} s; "
        f"{cpu / run['wall_s']:.2f} cores busy on average)"
    )
    print(f"CPU time of jobs (benchmark:):    {_fmt_s(job_cpu)}  ({len(jobs)} rules)")
    if worst:
        print(f"peak memory, any job (max_rss):   {worst[1]['max_rss_mb']:8.0f} MB  ({worst[0]})")
    print(f"peak memory, any process (wait4): {run['max_rss_any_process_mb']:8.0f} MB")
    print(f"peak memory, whole run (sum RSS): {run['peak_tree_rss_mb']:8.0f} MB")
    print(
        f"load average (1 min) during run:  mean {run['load_1min']['mean']:.2f}, "
        f"max {run['load_1min']['max']:.2f} (before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f}; {os.cpu_count()} CPUs)"
    )
    print(f"no-op rerun:                      {_fmt_s(noop['wall_s'])}")
    for rule, d in sorted(jobs.items(), key=lambda kv: -kv[1]["cpu_time_s"]):
        print(
            f"  {rule:<22s} {d['jobs']:5d} jobs  cpu {d['cpu_time_s']:8.1f} s  "
            f"wall {d['wall_s']:8.1f} s  max_rss {d['max_rss_mb']:6.0f} MB"
        )
    result = {
        "name": "cohort run",
        "n_subjects": args.subjects,
        "cores": args.cores,
        "n_jobs": n_jobs,
        "wall_s": run["wall_s"],
        "wall_per_subject_s": run["wall_s"] / args.subjects,
        "cpu_s": cpu,
        "job_cpu_s": job_cpu,
        "max_job_rss_mb": worst[1]["max_rss_mb"] if worst else None,
        "max_job_rss_rule": worst[0] if worst else None,
        "run": run,
        "load_before": load_before,
        "load_after": load_after,
        "noop": noop,
        "rules": jobs,
    }
    write_json("bench_cohort", _jsonable(args), [result], _versions())
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"kept {scratch}")


def dry_run(args) -> None:
    n_src = min(args.dry_source_subjects, args.dry_run_subjects)
    sim = simulate_cache(args.cache, n_src)
    scratch = Path(tempfile.mkdtemp(prefix="exgsrc-cohort-dry-", dir=args.scratch))
    bids = scratch / "bids"
    t0 = time.perf_counter()
    make_root(sim, bids, args.dry_run_subjects, n_sources=n_src)
    print(
        f"fabricated {args.dry_run_subjects} subjects (links to {n_src} simulated) in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    base = ["-n", "--config", f"bids_root={bids}", *args.config, *args.snakemake_args]
    runs = []
    n_jobs = None
    for k in range(args.repeat):
        profile = args.profile if (args.profile and k == args.repeat - 1) else None
        load = load_average()
        r = run_snakemake(scratch, base, scratch / f"dry{k}.log", profile=profile)
        text = Path(r["log"]).read_text()
        if r["returncode"] != 0:
            sys.exit(f"snakemake -n failed (see {r['log']}):\n{text[-3000:]}")
        m = _TOTAL_RE.search(text)
        n_jobs = int(m.group(1)) if m else None
        r["load_before"] = load
        r["profiled"] = profile is not None
        runs.append(r)
        tag = " (under cProfile)" if profile else ""
        print(
            f"snakemake -n, {args.dry_run_subjects} subjects, {n_jobs} jobs: "
            f"{r['wall_s']:6.2f} s wall, {r['cpu_user_s'] + r['cpu_sys_s']:6.2f} s CPU{tag}  "
            f"(load {load[0]:.2f})",
            flush=True,
        )
    plain = [r for r in runs if not r["profiled"]] or runs
    timed = [r["wall_s"] for r in plain]
    cpu = [r["cpu_user_s"] + r["cpu_sys_s"] for r in plain]
    print(
        f"dry run, {args.dry_run_subjects} subjects: best {min(timed):.2f} s, "
        f"median {sorted(timed)[len(timed) // 2]:.2f} s (goal < 10 s); CPU time best "
        f"{min(cpu):.2f} s (wall time on a loaded machine is longer than the CPU time)"
    )
    result = {
        "name": "cohort dry run",
        "n_subjects": args.dry_run_subjects,
        "n_jobs": n_jobs,
        "wall_s": {"min": min(timed), "median": sorted(timed)[len(timed) // 2], "all": timed},
        "cpu_s": {"min": min(cpu), "all": cpu},
        "runs": runs,
    }
    if args.floor and n_jobs:
        per_subject = max(1, round((n_jobs - 1) / args.dry_run_subjects))
        load = load_average()
        floor = snakemake_floor(scratch / "floor", args.dry_run_subjects, per_subject)
        floor["load_before"] = load
        result["floor"] = floor
        print(
            f"Snakemake alone, trivial Snakefile of {floor['n_jobs']} script jobs "
            f"({per_subject} chained rules per subject): {floor['wall_s']:6.2f} s wall, "
            f"{floor['cpu_user_s'] + floor['cpu_sys_s']:6.2f} s CPU (load {load[0]:.2f})"
        )
    write_json("bench_cohort", _jsonable(args), [result], _versions())
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"kept {scratch}")


def snakemake_floor(workdir: Path, n_subjects: int, per_subject: int) -> dict:
    """``snakemake -n`` on a trivial Snakefile of the same size: Snakemake's own cost.

    ``per_subject`` rules chained per subject (``script:`` rules, one input and
    one output each, no input functions, no params) and one rule over all
    subjects.

    Parameters
    ----------
    workdir : Path
        Folder of the Snakefile (created).
    n_subjects, per_subject : int

    Returns
    -------
    dict
        ``n_jobs``, ``wall_s``, ``cpu_user_s``, ``cpu_sys_s``, ...
        (:func:`run_snakemake`).
    """
    workdir.mkdir(parents=True)
    (workdir / "step.py").write_text("open(snakemake.output[0], 'w').close()\n")
    subs = [subject_label(i) for i in range(n_subjects)]
    lines = [f"SUBJECTS = {subs!r}", "", "rule all:"]
    lines += [f"    input: expand('out/{{subject}}/{per_subject - 1}.txt', subject=SUBJECTS)", ""]
    for k in range(per_subject):
        lines.append(f"rule step{k}:")
        if k:
            lines.append(f"    input: 'out/{{subject}}/{k - 1}.txt'")
        lines += [f"    output: 'out/{{subject}}/{k}.txt'", "    script: 'step.py'", ""]
    (workdir / "Snakefile").write_text("\n".join(lines))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(workdir / "Snakefile"), "-n"]
    t0 = time.perf_counter()
    with open(workdir / "dry.log", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    text = (workdir / "dry.log").read_text()
    m = _TOTAL_RE.search(text)
    return {
        "n_jobs": int(m.group(1)) if m else None,
        "per_subject": per_subject,
        "wall_s": wall,
        "cpu_user_s": ru.ru_utime,
        "cpu_sys_s": ru.ru_stime,
        "returncode": os.waitstatus_to_exitcode(status),
    }


def _jsonable(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def _versions() -> dict:
    """Snakemake's version (the JSON's machine record has numpy, scipy, ...)."""
    from importlib.metadata import version

    return {"versions_extra": {"snakemake": version("snakemake")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "exgsrc-cohort-cache",
        help="folder of the simulated subjects, made once and re-used",
    )
    ap.add_argument("--subjects", type=int, default=200, help="subjects of the full run")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument(
        "--scratch", type=Path, default=None, help="parent of the scratch folder (default: /tmp)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--sample", type=float, default=1.0, help="sampling interval (s)")
    ap.add_argument(
        "--config", nargs="*", default=[], help="more --config KEY=VALUE for the workflow"
    )
    ap.add_argument(
        "--snakemake-args", nargs=argparse.REMAINDER, default=[], help="passed on as they are"
    )
    ap.add_argument(
        "--dry-run-subjects",
        type=int,
        default=None,
        help="instead of a run: fabricate this many subjects and time `snakemake -n`",
    )
    ap.add_argument(
        "--dry-source-subjects",
        type=int,
        default=6,
        help="simulated subjects the fabricated ones link to",
    )
    ap.add_argument("--repeat", type=int, default=3, help="dry runs timed")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the last dry run")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also time `snakemake -n` on a trivial Snakefile with as many jobs",
    )
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.dry_run_subjects:
        dry_run(args)
    else:
        full_run(args)


if __name__ == "__main__":
    main()
