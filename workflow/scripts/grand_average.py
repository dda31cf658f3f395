"""Workflow step: cohort grand average (exgsrc.pipeline.step_grand_average)."""

from exgsrc.pipeline import run_step, step_grand_average

run_step(snakemake, step_grand_average)  # noqa: F821 - injected by Snakemake
