"""Workflow step: sphere head model (exgsrc.pipeline.step_head_model)."""

from exgsrc.pipeline import run_step, step_head_model

run_step(snakemake, step_head_model)  # noqa: F821 - injected by Snakemake
