"""Workflow step: simulate the demo cohort (exgsrc.pipeline.step_demo_bids)."""

from exgsrc.pipeline import run_step, step_demo_bids

run_step(snakemake, step_demo_bids)  # noqa: F821 - injected by Snakemake
