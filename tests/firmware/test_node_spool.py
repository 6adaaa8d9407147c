"""The flash spool and the uplink queue under MicroPython, on the unix port's VFS."""

from __future__ import annotations

from pathlib import Path

import pytest

from streetsense.hil import micropython
from streetsense.hil.node import FIRMWARE

pytestmark = pytest.mark.micropython

SCRIPT = Path(__file__).with_name("mp_spool.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("flash")
    out = micropython.run(SCRIPT, FIRMWARE, work, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


@pytest.mark.parametrize(
    "scenario",
    [
        "resumes_after_reopen",  # acknowledged records never come back after a reboot
        "torn_record_ends_segment",  # a record cut by a power loss is ignored, not misread
        "full_spool_drops_oldest",  # over budget: the oldest segment goes, counted as lost
        "queue_orders_hello_spool_ram",  # HELLO first, then flash, then RAM: seq order
        "flush_keeps_frames_drops_hello",  # before a reset: RAM to flash, HELLO dropped
    ],
)
def test_spool_scenario(results: dict[str, str], scenario: str) -> None:
    """Each spool/queue scenario of mp_spool.py holds under MicroPython (see its comment)."""
    assert results.get(scenario) == "ok", results
