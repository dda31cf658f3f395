"""Workflow step: one cohort statistical test (exgsrc.steps.statistics.step_statistics)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.statistics import step_statistics

run_step(snakemake, step_statistics)  # noqa: F821 - injected by Snakemake
