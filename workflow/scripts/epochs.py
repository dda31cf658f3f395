"""Workflow step: filtered, average-referenced epochs (exgsrc.pipeline.step_epochs)."""

from exgsrc.pipeline import run_step, step_epochs

run_step(snakemake, step_epochs)  # noqa: F821 - injected by Snakemake
