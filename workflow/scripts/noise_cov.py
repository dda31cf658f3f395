"""Workflow step: baseline noise covariance (exgsrc.pipeline.step_noise_cov)."""

from exgsrc.pipeline import run_step, step_noise_cov

run_step(snakemake, step_noise_cov)  # noqa: F821 - injected by Snakemake
