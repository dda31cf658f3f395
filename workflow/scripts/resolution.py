"""Workflow step: resolution metrics per method (exgsrc.pipeline.step_resolution)."""

from exgsrc.pipeline import run_step, step_resolution

run_step(snakemake, step_resolution)  # noqa: F821 - injected by Snakemake
