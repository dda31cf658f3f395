"""Workflow step: demo localisation error of the true dipoles (exgsrc.pipeline.step_localisation_error)."""

from exgsrc.pipeline import run_step, step_localisation_error

run_step(snakemake, step_localisation_error)  # noqa: F821 - injected by Snakemake
