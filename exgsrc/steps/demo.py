"""Steps of ``demo.smk``: the simulated demo cohort and the derivatives' description."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .. import __version__
from ..simulate import make_demo_bids
from ..store import write_text_atomic
from ._run import StepContext

__all__ = ["step_demo_bids", "step_dataset_description"]


def step_demo_bids(ctx: StepContext) -> None:
    """Simulate the demo cohort into ``config["demo"]["root"]``.

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    demo = dict(ctx.params.demo)
    root = demo.pop("root")
    make_demo_bids(
        root,
        n_subjects=demo["n_subjects"],
        conditions=tuple(demo["conditions"]),
        seed=demo["seed"],
        n_channels=None if demo.get("montage") else demo["n_channels"],
        montage=demo.get("montage"),
        n_trials=demo["n_trials"],
        sfreq=demo["sfreq"],
    )


def step_dataset_description(ctx: StepContext) -> None:
    """Write the derivatives' ``dataset_description.json`` (GeneratedBy: exgsrc).

    Parameters
    ----------
    ctx : StepContext
        The job's inputs, outputs, params and wildcards (see :func:`run_step`);
        outputs are written through ``ctx.write`` (atomic, with provenance).
    """
    desc = {
        "Name": "exgsrc source imaging derivatives",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "exgsrc",
                "Version": __version__,
                "Description": "EEG source imaging on sphere head models (Snakemake workflow)",
            }
        ],
        "SourceDatasets": [{"URL": Path(ctx.params.bids_root).resolve().as_uri()}],
        "exgsrc": {
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "config": ctx.config,
        },
    }
    write_text_atomic(ctx.output[0], json.dumps(desc, indent=2, default=str) + "\n")
