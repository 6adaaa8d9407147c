"""Fixtures of the firmware tests."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "firmware"))  # ssnode, for the CPython runs

import mp_traffic  # noqa: E402
from traffic_runner import run_micropython  # noqa: E402


@pytest.fixture(
    params=[pytest.param("micropython", marks=pytest.mark.micropython), "cpython"],
)
def run(request: pytest.FixtureRequest, tmp_path: Path):
    """Run a traffic spec through mp_traffic under the parametrised interpreter (the same
    firmware module on both)."""
    if request.param == "micropython":
        return lambda spec: run_micropython(spec, tmp_path)
    return mp_traffic.run
