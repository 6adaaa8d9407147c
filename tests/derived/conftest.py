"""Fixtures for the derived-value tests."""

from __future__ import annotations

import pytest

from tests.derived.derived_support import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    """An empty in-memory state store."""
    return MemoryStore()
