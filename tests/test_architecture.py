"""The package's layering: no import circle, the core never imports upward.

The map is ``../shared/ARCHITECTURE.md``: the numerical core imports only itself; the
data containers and preprocessing sit on it; ``io``, ``store``, ``report`` and
``steps`` above them; the workflow's DAG-time modules import the standard library only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exgsrc"
CORE = {
    "exgsrc.source_space",
    "exgsrc.forward",
    "exgsrc.scalp",
    "exgsrc.covariance",
    "exgsrc.linalg",
    "exgsrc.inverse",
    "exgsrc.eloreta",
    "exgsrc.resolution",
    "exgsrc.snr",
    "exgsrc.stats",
    "exgsrc._stats_adjacency",
    "exgsrc._stats_cluster",
    "exgsrc._stats_engine",
    "exgsrc._stats_results",
    "exgsrc._stats_tfce",
    "exgsrc._stats_tmax",
    "exgsrc._stats_ttest",
    "exgsrc._system",
}
UPPER = ("exgsrc.store", "exgsrc.steps", "exgsrc.io", "exgsrc.report", "exgsrc.cli")
GLUE = ("exgsrc.steps", "exgsrc.store", "exgsrc.report", "exgsrc.io")
# Imported by workflow/rules/common.smk while Snakemake builds the DAG.
DAG_TIME = (
    "exgsrc.labels",
    "exgsrc.provenance",
    "exgsrc.io.discovery",
    "exgsrc.io.events",
    "exgsrc.config",
    "exgsrc.runs",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            graph[mod].update(t for t in targets if t in files and t != mod)
    return graph, files


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    graph, _ = _import_graph()
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_core_never_imports_upward():
    graph, _ = _import_graph()
    upward = {
        (mod, dep)
        for mod in CORE & set(graph)
        for dep in graph[mod]
        if dep.startswith(UPPER) or dep.startswith(("exgsrc.containers", "exgsrc.preprocessing"))
    }
    assert upward == set()


def test_glue_modules_stay_small():
    _, files = _import_graph()
    sizes = {m: len(p.read_text().splitlines()) for m, p in files.items() if m.startswith(GLUE)}
    assert {m: n for m, n in sizes.items() if n > 750} == {}


def test_step_functions_stay_short():
    long = {}
    for path in (PACKAGE / "steps").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 85:
                    long[f"{path.name}:{node.name}"] = n
    assert long == {}


@pytest.mark.parametrize("module", DAG_TIME)
def test_dag_time_modules_import_no_numerics(module):
    code = (
        f"import sys, {module}; "
        "heavy = sorted(m for m in ('numpy', 'scipy', 'xarray', 'pandas') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
