"""Workflow step: inverse operator (exgsrc.pipeline.step_inverse_operator)."""

from exgsrc.pipeline import run_step, step_inverse_operator

run_step(snakemake, step_inverse_operator)  # noqa: F821 - injected by Snakemake
