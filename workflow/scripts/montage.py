"""Workflow step: electrode montage and channel table (exgsrc.pipeline.step_montage)."""

from exgsrc.pipeline import run_step, step_montage

run_step(snakemake, step_montage)  # noqa: F821 - injected by Snakemake
