"""Workflow step: cohort QC table (exgsrc.pipeline.step_qc_table)."""

from exgsrc.pipeline import run_step, step_qc_table

run_step(snakemake, step_qc_table)  # noqa: F821 - injected by Snakemake
