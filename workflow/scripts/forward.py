"""Workflow step: sphere forward model (exgsrc.steps.headmodel.step_forward)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.headmodel import step_forward

run_step(snakemake, step_forward)  # noqa: F821 - injected by Snakemake
