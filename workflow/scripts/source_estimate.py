"""Workflow step: source estimates of one condition, all methods (exgsrc.steps.inverse.step_source_estimate)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.inverse import step_source_estimate

run_step(snakemake, step_source_estimate)  # noqa: F821 - injected by Snakemake
