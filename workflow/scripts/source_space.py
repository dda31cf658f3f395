"""Workflow step: source space (exgsrc.steps.headmodel.step_source_space)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.headmodel import step_source_space

run_step(snakemake, step_source_space)  # noqa: F821 - injected by Snakemake
