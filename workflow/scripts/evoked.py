"""Workflow step: evoked response of one condition (exgsrc.pipeline.step_evoked)."""

from exgsrc.pipeline import run_step, step_evoked

run_step(snakemake, step_evoked)  # noqa: F821 - injected by Snakemake
