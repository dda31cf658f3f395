"""Workflow step: one subject's self-contained QC report (exgsrc.report.workflow)."""

from exgsrc.report.workflow import run_subject_report

run_subject_report(snakemake)  # noqa: F821 - injected by Snakemake
