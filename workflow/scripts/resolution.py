"""Workflow step: resolution metrics per method (exgsrc.steps.resolution.step_resolution)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.resolution import step_resolution

run_step(snakemake, step_resolution)  # noqa: F821 - injected by Snakemake
