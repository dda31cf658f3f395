"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_BIDS = PROJECT_ROOT.parent / "shared" / "data" / "bids-eeglab-squares"


@pytest.fixture(scope="session")
def shared_bids_root() -> Path:
    """Root of the real BIDS dataset that lives beside the project (never copied in)."""
    if not SHARED_BIDS.is_dir():
        pytest.fail(f"shared real dataset not found at {SHARED_BIDS}")
    return SHARED_BIDS


@pytest.fixture(scope="module")
def single_thread_blas():
    """Limit BLAS to one thread (small matrices: threads only add contention on CI cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
