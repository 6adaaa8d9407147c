"""Fixtures shared by the protocol tests: the MicroPython interpreter and a staging dir."""

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTOCOL_DIR = REPO / "protocol"
VECTORS = PROTOCOL_DIR / "vectors" / "v1.json"
HERE = Path(__file__).resolve().parent


def _find_micropython() -> str | None:
    override = os.environ.get("MICROPYTHON")
    if override:
        return override
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


@pytest.fixture(scope="session")
def micropython() -> str:
    """Path of the MicroPython unix port ($MICROPYTHON overrides); skips if there is none."""
    exe = _find_micropython()
    if exe is None:
        pytest.skip("no MicroPython interpreter (set MICROPYTHON)")
    return exe


@pytest.fixture(scope="session")
def mp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for MicroPython's sys.path holding streetsense/ and streetsense/protocol/."""
    root = tmp_path_factory.mktemp("mp_path")
    package = root / "streetsense"
    (package / "protocol").mkdir(parents=True)
    shutil.copy(REPO / "streetsense" / "__init__.py", package / "__init__.py")
    for source in PROTOCOL_DIR.glob("*.py"):
        shutil.copy(source, package / "protocol" / source.name)
    return root
