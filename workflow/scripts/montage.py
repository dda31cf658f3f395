"""Workflow step: electrode montage and channel table (exgsrc.steps.headmodel.step_montage)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.headmodel import step_montage

run_step(snakemake, step_montage)  # noqa: F821 - injected by Snakemake
