"""The installed streetsense version, as the gateway reports it (state, metrics, backups)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["gateway_version"]


def gateway_version() -> str:
    """The installed streetsense version ("unknown" when run from a bare checkout)."""
    try:
        return version("streetsense")
    except PackageNotFoundError:
        return "unknown"
