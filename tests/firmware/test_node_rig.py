"""The emulated board's rig: restarts after reset() and a watchdog bite, with the cause set."""

from __future__ import annotations

from pathlib import Path

import pytest

from streetsense.hil.node import EmulatedNode

pytestmark = pytest.mark.micropython

# Stands in for main.py: a reset, then a watchdog bite, then a clean exit.
MAIN = """\
import machine, sys, time
cause = machine.reset_cause()
print("cause", cause)
if cause == machine.PWRON_RESET:
    machine.reset()
if cause == machine.SOFT_RESET:
    wdt = machine.WDT(timeout=10)
    time.sleep_ms(30)
    wdt.feed()
sys.exit(0)
"""


def test_rig_restarts_after_reset_and_watchdog_with_their_causes(tmp_path: Path) -> None:
    """reset() (exit 86) and a late WDT feed (exit 87) restart the firmware with
    reset_cause() SOFT_RESET and WDT_RESET; any other exit ends the run."""
    node = EmulatedNode("test", flash_dir=tmp_path / "flash")
    try:
        (node.flash_dir / "main.py").write_text(MAIN)
        node.start()
        assert node.wait(20) == 0
        causes = [line for line in node.console if line.startswith("cause")]
    finally:
        node.close()
    assert causes == ["cause 1", "cause 5", "cause 3"]
