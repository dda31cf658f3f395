"""Workflow step: simulate the demo cohort (exgsrc.steps.demo.step_demo_bids)."""

from exgsrc.steps._run import run_step
from exgsrc.steps.demo import step_demo_bids

run_step(snakemake, step_demo_bids)  # noqa: F821 - injected by Snakemake
