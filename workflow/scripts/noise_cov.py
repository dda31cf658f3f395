"""Workflow step: baseline noise covariance (exgsrc.steps.preprocess.step_noise_cov)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.preprocess import step_noise_cov

run_step(snakemake, step_noise_cov)  # noqa: F821 - injected by Snakemake
