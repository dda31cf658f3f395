"""Workflow step: demo localisation error of the true dipoles (exgsrc.steps.cohort.step_localisation_error)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.cohort import step_localisation_error

run_step(snakemake, step_localisation_error)  # noqa: F821 - injected by Snakemake
