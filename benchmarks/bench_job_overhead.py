"""Per-job start-up cost of the workflow's scripts: Python, Snakemake's preamble, imports.

Run: ``.venv/bin/python benchmarks/bench_job_overhead.py [--repeat 5] [--json]``

Every job of a ``script:`` rule is a fresh Python process that runs Snakemake's
preamble (``import pickle``; unpickle the ``snakemake`` object, which imports
``snakemake.io``; ``from snakemake.logging import logger``; ``from
snakemake.iocontainers import Snakemake``) and then the script's own imports
(``exgsrc.steps.<stage>`` and what it imports) before any work. For each script
of ``workflow/scripts/`` this prints, median (min) of ``--repeat`` fresh
processes:

* ``total``: wall time of a process doing the preamble's imports and the
  script's imports, and nothing else (what every job of that rule pays);
* ``preamble``: the same without the script's imports (Python start-up and
  Snakemake alone: the floor while the workflow uses ``script:``);
* ``step``: ``total - preamble``, what the script's own imports add;

and, from one ``python -X importtime`` run per script, the heaviest top-level
packages the script imports beyond the preamble (the sum of their modules' own
import times).
The machine is shared: check ``uptime``, and compare numbers of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
PREAMBLE = (
    "import sys, pickle\n"
    "import snakemake.io\n"  # what unpickling the snakemake object imports
    "from snakemake.logging import logger\n"
    "from snakemake.iocontainers import Snakemake\n"
)


def script_imports(path: Path) -> str:
    """The import statements of one workflow script (its top-level ``from``/``import`` lines)."""
    lines = path.read_text().splitlines()
    return "\n".join(ln for ln in lines if ln.startswith(("from ", "import ")))


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def wall(code: str, repeat: int) -> list[float]:
    """Wall times (s) of ``repeat`` fresh ``python -c code`` processes."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_env(), cwd="/")
        times.append(time.perf_counter() - t0)
    return times


def import_profile(code: str, after: str = PREAMBLE) -> dict[str, int]:
    """Import time (us) of each top-level package ``code`` imports after ``after``.

    The sum of the ``self`` times of the package's modules (``scipy.linalg`` counts
    for ``scipy``), so that nothing is counted twice.
    """
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", after + code],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
        cwd="/",
    )
    base = subprocess.run(
        [sys.executable, "-c", after + "import sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
        cwd="/",
    ).stdout.split()
    seen = set(base)
    out: dict[str, int] = {}
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if not m or m.group(3) in seen:
            continue
        top = m.group(3).split(".")[0]
        out[top] = out.get(top, 0) + int(m.group(1))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> int:
    """Print the table (and the JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    ap.add_argument("scripts", nargs="*", help="script names (default: all)")
    args = ap.parse_args(argv)
    paths = sorted(SCRIPTS.glob("*.py"))
    if args.scripts:
        paths = [p for p in paths if p.stem in args.scripts]
    print(f"load average {os.getloadavg()[0]:.2f}; {args.repeat} processes each; seconds")
    pre = wall(PREAMBLE, args.repeat)
    pre_med = statistics.median(pre)
    print(f"{'preamble (python + snakemake)':32s} {pre_med:6.3f} ({min(pre):.3f})")
    rows = {}
    print(f"{'script':32s} {'total':>14s} {'step':>6s}  heaviest imports beyond the preamble (ms)")
    for path in paths:
        code = script_imports(path)
        t = wall(PREAMBLE + code, args.repeat)
        med = statistics.median(t)
        prof = import_profile(code)
        top = ", ".join(f"{k} {v / 1000:.0f}" for k, v in list(prof.items())[:5])
        print(f"{path.stem:32s} {med:6.3f} ({min(t):.3f}) {med - pre_med:6.3f}  {top}")
        rows[path.stem] = {"median": med, "min": min(t), "step": med - pre_med, "imports_us": prof}
    if args.json:
        print(json.dumps({"preamble": {"median": pre_med, "min": min(pre)}, "scripts": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
