"""Workflow step: sphere forward model (exgsrc.pipeline.step_forward)."""

from exgsrc.pipeline import run_step, step_forward

run_step(snakemake, step_forward)  # noqa: F821 - injected by Snakemake
