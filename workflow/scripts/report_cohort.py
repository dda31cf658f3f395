"""Workflow step: the cohort QC report (exgsrc.steps.report.step_cohort_report)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.report import step_cohort_report

run_step(snakemake, step_cohort_report)  # noqa: F821 - injected by Snakemake
