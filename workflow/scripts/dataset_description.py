"""Workflow step: derivatives dataset_description.json (exgsrc.steps.demo.step_dataset_description)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.demo import step_dataset_description

run_step(snakemake, step_dataset_description)  # noqa: F821 - injected by Snakemake
