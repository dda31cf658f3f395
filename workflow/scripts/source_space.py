"""Workflow step: source space (exgsrc.pipeline.step_source_space)."""

from exgsrc.pipeline import run_step, step_source_space

run_step(snakemake, step_source_space)  # noqa: F821 - injected by Snakemake
