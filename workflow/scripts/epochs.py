"""Workflow step: filtered, average-referenced epochs (exgsrc.steps.preprocess.step_epochs)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.preprocess import step_epochs

run_step(snakemake, step_epochs)  # noqa: F821 - injected by Snakemake
