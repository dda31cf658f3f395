"""Workflow step: one subject's self-contained QC report (exgsrc.steps.report.step_subject_report)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.report import step_subject_report

run_step(snakemake, step_subject_report)  # noqa: F821 - injected by Snakemake
