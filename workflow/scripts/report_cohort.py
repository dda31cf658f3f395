"""Workflow step: the cohort QC report (exgsrc.report.workflow)."""

from exgsrc.report.workflow import run_cohort_report

run_cohort_report(snakemake)  # noqa: F821 - injected by Snakemake
