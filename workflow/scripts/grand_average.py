"""Workflow step: cohort grand average (exgsrc.steps.cohort.step_grand_average)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.cohort import step_grand_average

run_step(snakemake, step_grand_average)  # noqa: F821 - injected by Snakemake
