"""Workflow step: estimated SNR per condition (exgsrc.steps.inverse.step_snr)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.inverse import step_snr

run_step(snakemake, step_snr)  # noqa: F821 - injected by Snakemake
