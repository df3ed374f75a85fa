"""Shared test fixtures: the real faces in ../shared/fixtures (skipped when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures, or skip: the real-face fixtures live beside the project, never in it."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real-face fixtures not found at {FIXTURES} (they live beside the project)")
    return FIXTURES


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (state-dict manifests of the published checkpoints), or skip."""
    if not REFERENCE.is_dir():
        pytest.skip(f"checkpoint manifests not found at {REFERENCE}")
    return REFERENCE
