"""Workflow step: evoked responses of all conditions of a subject (exgsrc.steps.preprocess.step_evoked)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.preprocess import step_evoked

run_step(snakemake, step_evoked)  # noqa: F821 - injected by Snakemake
