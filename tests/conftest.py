"""Shared fixtures: the real reference files in ../shared/anchors (tests skip when absent)."""
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ANCHORS = REPO_ROOT.parent / "shared" / "anchors"


@pytest.fixture(scope="session")
def anchors() -> Path:
    """Path to ../shared/anchors; skips the test when the folder is not beside the checkout."""
    if not ANCHORS.is_dir():
        pytest.skip("../shared/anchors is absent")
    return ANCHORS


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
