"""Workflow step: sphere head model (exgsrc.steps.headmodel.step_head_model)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.headmodel import step_head_model

run_step(snakemake, step_head_model)  # noqa: F821 - injected by Snakemake
