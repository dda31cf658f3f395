"""Workflow step: evoked response of one condition (exgsrc.steps.preprocess.step_evoked)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.preprocess import step_evoked

run_step(snakemake, step_evoked)  # noqa: F821 - injected by Snakemake
