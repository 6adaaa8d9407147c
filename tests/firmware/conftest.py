"""Fixtures of the firmware tests."""

from pathlib import Path

import pytest

from tests.firmware import mp_traffic
from tests.firmware.traffic_runner import run_micropython


@pytest.fixture(
    params=[pytest.param("micropython", marks=pytest.mark.micropython), "cpython"],
)
def run(request: pytest.FixtureRequest, tmp_path: Path):
    """Run a traffic spec through mp_traffic under the parametrised interpreter (the same
    firmware module on both)."""
    if request.param == "micropython":
        return lambda spec: run_micropython(spec, tmp_path)
    return mp_traffic.run
