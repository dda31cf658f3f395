"""Workflow step: source estimate of one condition and method (exgsrc.pipeline.step_source_estimate)."""

from exgsrc.pipeline import run_step, step_source_estimate

run_step(snakemake, step_source_estimate)  # noqa: F821 - injected by Snakemake
