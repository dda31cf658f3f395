"""Workflow step: derivatives dataset_description.json (exgsrc.pipeline.step_dataset_description)."""

from exgsrc.pipeline import run_step, step_dataset_description

run_step(snakemake, step_dataset_description)  # noqa: F821 - injected by Snakemake
