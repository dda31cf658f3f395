"""The README's Python examples run as written (the README must stay true).

The examples that read workflow outputs run in tests/test_workflow.py, on the
tiny demo run; this module runs the numerical-core example.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_blocks() -> list[str]:
    """The ```python blocks of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_api_example_runs_and_gives_what_it_says():
    (block,) = [b for b in readme_python_blocks() if "make_inverse_operator" in b]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    fwd, stc, metrics = namespace["fwd"], namespace["stc"], namespace["metrics"]
    assert fwd.gain.shape == (20, 3 * 642)  # as its comment says
    ds = stc.to_xarray()
    assert ds["stc"].dims == ("source", "time") and {"x", "y", "z"} <= set(ds.coords)
    peak_err = np.asarray(metrics["psf_peak_err"])
    assert peak_err.shape == (642,) and np.all(peak_err >= 0)


def test_events_example_runs(tmp_path, monkeypatch):
    (block,) = [b for b in readme_python_blocks() if "condition_rows" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    ev, rows = namespace["ev"], namespace["rows"]
    assert len(rows["standard"]) == len(rows["deviant"]) == 10
    assert {ev.trial_type[i] for i in rows["deviant"]} == {"2"}
    assert {ev.columns["trial_type"][i] for i in rows["deviant"]} == {"target"}
