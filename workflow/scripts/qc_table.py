"""Workflow step: cohort QC table (exgsrc.steps.cohort.step_qc_table)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.cohort import step_qc_table

run_step(snakemake, step_qc_table)  # noqa: F821 - injected by Snakemake
