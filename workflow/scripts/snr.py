"""Workflow step: estimated SNR per condition (exgsrc.pipeline.step_snr)."""

from exgsrc.pipeline import run_step, step_snr

run_step(snakemake, step_snr)  # noqa: F821 - injected by Snakemake
