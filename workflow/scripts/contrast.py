"""Workflow step: evoked response of a contrast (exgsrc.steps.preprocess.step_contrast)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.preprocess import step_contrast

run_step(snakemake, step_contrast)  # noqa: F821 - injected by Snakemake
