"""Workflow step: inverse operator (exgsrc.steps.inverse.step_inverse_operator)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.inverse import step_inverse_operator

run_step(snakemake, step_inverse_operator)  # noqa: F821 - injected by Snakemake
