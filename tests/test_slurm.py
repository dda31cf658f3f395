"""The workflow on a real SLURM cluster, through the project's SLURM profile.

A module-scoped fixture starts a private single-node cluster from Debian's
packages (munged with a fresh key, slurmctld and slurmd with a generated
slurm.conf, all state, sockets and logs in a temporary directory, free ports),
waits until the node is idle and stops every daemon afterwards. The test then
runs Snakemake with ``--profile profiles/slurm`` on a two-subject,
one-condition, one-method variant of the tiny demo, and checks the netCDF
outputs and that each subject's steps ran as one SLURM job (the profile's
``groups``), the demo simulation and the cohort step as one job each, and
nothing else was submitted.

Without the SLURM binaries (``.ci/run`` installs them) the tests are skipped;
a cluster that is installed but does not come up is a failure, with the daemon
logs in the message.

Two settings of the test cluster matter to the SLURM executor plugin:

* No accounting database (slurmdbd) is run, so ``sacct`` cannot answer; the
  plugin is told to use ``squeue`` (``--slurm-status-command squeue``) and the
  cluster keeps finished jobs visible to it for ``MinJobAge=600`` seconds.
* The cluster's slurm.conf is not at /etc/slurm/slurm.conf but named by
  ``SLURM_CONF``. Inside a job, snakemake-executor-plugin-slurm-jobstep (0.6.1)
  removes every ``SLURM_*`` variable but a few job ids before it calls
  ``srun``, ``SLURM_CONF`` included, so that ``srun`` would look for the
  default config and fail. The fixture therefore puts a two-line ``srun`` in
  front of the real one on ``PATH`` that sets ``SLURM_CONF`` again and execs
  the real ``srun``. Sites with their slurm.conf in the default place (or in
  configless mode) do not need this.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import xarray as xr

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TINY = ROOT / "config" / "test_tiny.yaml"
PROFILE = ROOT / "profiles" / "slurm"

SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "srun", "scontrol", "scancel")
PARTITION = "exgsrc"
# Seconds from one status query to the next after a job finished (the plugin's
# --slurm-init-seconds-before-status-checks; its default is 40). A one-step job
# of the tiny demo takes 5-8 s from submission to its end (two Python start-ups:
# the batch script and the srun step); a query that finds none of them finished
# makes the plugin wait 10 s longer, so this stays a little above that.
STATUS_CHECK_SECONDS = 10


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def _tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<{path.name}: {exc}>"
    return "\n".join(lines[-n:])


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Cluster:
    root: Path
    conf: Path
    node: str
    env: dict[str, str]
    mem_mb: int = 0
    logs: list[Path] = field(default_factory=list)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_which(cmd[0]) or cmd[0], *cmd[1:]],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def diagnostics(self) -> str:
        parts = []
        for name, proc in self.procs.items():
            parts.append(
                f"{name}: {'running' if proc.poll() is None else f'exited {proc.returncode}'}"
            )
        for log in self.logs:
            parts.append(f"--- {log.name} ---\n{_tail(log)}")
        return "\n".join(parts)

    def start(self, name: str, *args: str) -> None:
        log = self.root / f"{name}.out"
        self.logs.append(log)
        with open(log, "w") as fh:
            self.procs[name] = subprocess.Popen(
                [_which(name), *args],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def wait_for(self, what: str, ready, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                break
            time.sleep(0.3)
        pytest.fail(f"private SLURM cluster: {what} not ready\n{self.diagnostics()}")

    def stop(self) -> None:
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                ids = self.run("squeue", "--noheader", "--format=%i", timeout=10).stdout.split()
                if ids:
                    self.run("scancel", *ids, timeout=10)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def _node_line(slurmd: str) -> tuple[str, int, str]:
    """The node's NodeName line from ``slurmd -C``, memory lowered by 10 %."""
    out = subprocess.run([slurmd, "-C"], capture_output=True, text=True, timeout=30)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    fields = dict(kv.split("=", 1) for kv in first.split() if "=" in kv)
    if out.returncode != 0 or "NodeName" not in fields:
        pytest.fail(f"slurmd -C failed ({out.returncode}): {out.stdout}{out.stderr}")
    node = fields["NodeName"]
    mem = int(int(fields.get("RealMemory", "2000")) * 0.9)
    fields["RealMemory"] = str(mem)
    fields.pop("UpTime", None)
    line = " ".join(f"{k}={v}" for k, v in fields.items())
    return node, mem, f"{line} NodeAddr=127.0.0.1 State=UNKNOWN"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if missing:
        pytest.skip(
            f"SLURM is not installed ({', '.join(missing)} not found); "
            ".ci/run installs Debian's slurmctld, slurmd, slurm-client and munge"
        )
    if os.geteuid() != 0:
        pytest.skip("a private SLURM cluster needs root (slurmd starts jobs as their user)")

    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "bin"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = root / "munge" / "munge.socket"
    user = os.environ.get("USER") or "root"
    node, mem, node_line = _node_line(_which("slurmd"))
    ctld_port, d_port = _free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""# private single-node test cluster of tests/test_slurm.py
ClusterName=exgsrctest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# no slurmdbd: finished jobs stay visible to squeue (the status command) for 10 min
MinJobAge=600
{node_line}
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    )
    # see the module docstring: the jobstep plugin drops SLURM_CONF before srun
    srun = root / "bin" / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{_which("srun")}" "$@"\n')
    srun.chmod(0o755)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", ""), SBIN])
    cluster = Cluster(root=root, conf=conf, node=node, env=env)
    cluster.logs += [root / "slurmctld.log", root / "slurmd.log"]
    try:
        cluster.start(
            "munged",
            "--foreground",
            "--force",
            f"--socket={sock}",
            f"--key-file={key}",
            f"--log-file={root / 'munged.log'}",
            f"--pid-file={root / 'munged.pid'}",
            f"--seed-file={root / 'munged.seed'}",
        )
        cluster.wait_for("munged", sock.exists, timeout=15)
        cluster.start("slurmctld", "-D", "-i", "-f", str(conf))
        cluster.start("slurmd", "-D", "-f", str(conf), "-N", node)

        def node_idle():
            res = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", timeout=10)
            return res.returncode == 0 and res.stdout.strip() == "idle"

        cluster.wait_for(f"node {node} idle in sinfo", node_idle, timeout=60)
        cluster.mem_mb = mem
        yield cluster
    finally:
        cluster.stop()


def _submitted(log: str) -> dict[int, tuple[str, str]]:
    """SLURM job id -> (what it ran, its log folder), from the plugin's "submitted with
    SLURM jobid" lines (one per sbatch call). What it ran is ``rule_<rule>`` or
    ``group_<group>``; the folder of a group job is ``group_<group>_<its rules>...``."""
    out = {}
    for j, folder in re.findall(
        r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/([^/\s]+)/", log
    ):
        what = folder
        if folder.startswith("group_"):
            what = "group_" + folder.removeprefix("group_").split("_", 1)[0]
        out[int(j)] = (what, folder)
    return out


def test_workflow_runs_as_one_slurm_job_per_subject(slurm_cluster, tmp_path):
    """Two subjects: one sbatch job each (all their steps), one for the demo simulation
    and one per cohort step (here one grand average); the localrules run in the main
    process. The count is checked against the plugin's log and against SLURM's own
    records (squeue keeps finished jobs, MinJobAge)."""
    cl = slurm_cluster
    override = tmp_path / "two_subjects.yaml"
    override.write_text(
        "demo:\n  n_subjects: 2\n  conditions: [auditory]\n"
        "inverse:\n  methods: [sLORETA]\nresolution:\n  enabled: false\n"
    )
    subjects = ("01", "02")
    stc = "results/sub-{s}/eeg/sub-{s}_task-demo_cond-auditory_desc-sLORETA_stc.nc"
    snr = "results/sub-{s}/eeg/sub-{s}_task-demo_snr.nc"
    grandavg = "results/group/task-demo_cond-auditory_desc-sLORETA_grandavg.nc"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "--directory",
        str(tmp_path),
        "--profile",
        str(PROFILE),
        "--configfile",
        str(TINY),
        str(override),
        "--jobs",
        "2",
        # the largest job this 2-CPU node can run: Snakemake sizes a group job by
        # the steps it can run side by side, at most --cores
        "--cores",
        "2",
        "--latency-wait",
        "10",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        str(STATUS_CHECK_SECONDS),
        "--slurm-keep-successful-logs",
        # threads of one rule become that job's --cpus-per-task (README, "Threads")
        "--set-threads=source_estimate=2",  # "=": the option takes several values
    ]
    if cl.mem_mb < 8000:  # the profile asks for 4 GB per step, a group for those side by side
        cmd += ["--default-resources", f"mem_mb={cl.mem_mb // 4}", "runtime=30"]
    # the subjects' chains (9 rules each: montage .. snr), the demo simulation, one
    # cohort step; the reports would add minutes without testing anything new about SLURM
    targets = [p.format(s=s) for s in subjects for p in (stc, snr)]
    cmd += [*targets, grandavg, "results/dataset_description.json"]
    t0 = time.monotonic()
    res = subprocess.run(
        cmd, capture_output=True, text=True, env=cl.env, cwd=tmp_path, timeout=600
    )
    elapsed = time.monotonic() - t0
    log = res.stdout + res.stderr
    assert res.returncode == 0, (
        f"snakemake on SLURM failed ({res.returncode}) after {elapsed:.0f} s:\n"
        f"{log[-8000:]}\n{cl.diagnostics()}"
    )

    # the outputs are real, labelled netCDF files
    for s in subjects:
        with xr.open_dataset(tmp_path / stc.format(s=s)) as ds:
            assert ds["stc"].dims == ("source", "time")
            assert ds.sizes["source"] == 642  # ico grade 3
            assert ds.attrs["method"] == "sLORETA" and ds.attrs["condition"] == "auditory"
        with xr.open_dataset(tmp_path / snr.format(s=s)) as ds:
            assert ds["snr"].dims == ("condition", "time")
            assert list(ds["condition"].values) == ["auditory"]
    with xr.open_dataset(tmp_path / grandavg) as ds:
        assert ds.attrs["n_subjects"] == 2

    # sbatch jobs: one per subject + the demo simulation + the cohort step, no more
    submitted = _submitted(log)
    kinds = sorted(what for what, _ in submitted.values())
    assert kinds == ["group_subject"] * len(subjects) + ["rule_demo_bids", "rule_grand_average"], (
        kinds,
        log[-4000:],
    )
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    q = cl.run("squeue", "--states=all", "--noheader", f"--name={run_id}", "--format=%i|%T|%N|%C")
    assert q.returncode == 0, q.stderr
    seen = {
        int(i): (state, nodes, int(cpus))
        for i, state, nodes, cpus in (r.split("|") for r in q.stdout.split())
    }
    # SLURM's own records of this run: exactly the jobs the plugin submitted
    assert set(seen) == set(submitted), (q.stdout, submitted)
    assert len(seen) == len(subjects) + 2
    assert all(st == "COMPLETED" and n == cl.node for st, n, _ in seen.values()), seen
    cpus = {j: c for j, (_, _, c) in seen.items()}
    for jobid, (what, _) in submitted.items():
        # a subject's job holds its 2-thread step; the others ask for 1 CPU
        assert cpus[jobid] == (2 if what == "group_subject" else 1), (what, cpus)
    for s in subjects:
        est_log = tmp_path / "results" / "logs" / "source_estimate" / f"sub-{s}_cond-auditory.log"
        assert "threads 2 (numerics use" in est_log.read_text()

    # each subject's sbatch job ran all that subject's steps, on the compute node
    subject_rules = {
        "montage",
        "head_model",
        "source_space",
        "forward",
        "epochs",
        "noise_cov",
        "evoked",
        "inverse_operator",
        "source_estimate",
        "snr",
    }
    ran = {}
    for jobid, (what, folder) in submitted.items():
        logs = list((tmp_path / ".snakemake" / "slurm_logs" / folder).rglob(f"{jobid}.log"))
        assert len(logs) == 1, (what, jobid)
        text = logs[0].read_text()
        rules = set(re.findall(r"Finished jobid: \S+ \(Rule: (\w+)\)", text))
        subs = set(re.findall(r"wildcards: subject=(\w+)", text))
        if what == "group_subject":
            assert rules == subject_rules and len(subs) == 1, (rules, subs, text[-2000:])
            ran[subs.pop()] = jobid
            n = len(subject_rules)
            assert f"{n} of {n} steps (100%) done" in text, text[-2000:]
        else:
            assert rules == {what.removeprefix("rule_")}, (rules, text[-2000:])
            assert "1 of 1 steps (100%) done" in text, text[-2000:]
    assert sorted(ran) == list(subjects)
    # localrules stayed in the main process
    assert (tmp_path / "results" / "dataset_description.json").is_file()
    assert not (tmp_path / ".snakemake" / "slurm_logs" / "rule_dataset_description").exists()
    print(f"workflow on SLURM: {len(submitted)} sbatch jobs for 2 subjects in {elapsed:.0f} s")
