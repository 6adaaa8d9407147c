"""Fixtures for the derived-value tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from derived_support import MemoryStore

# The end-to-end test drives the gateway with the gateway tests' PTY node (pipeline_helpers).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))


@pytest.fixture
def store() -> MemoryStore:
    """An empty in-memory state store."""
    return MemoryStore()
