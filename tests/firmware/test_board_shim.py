"""The emulated board's `machine` shim under MicroPython: the parts drivers don't exercise."""

from __future__ import annotations

import json
from pathlib import Path

from streetsense.hil import micropython
from streetsense.hil.node import BOARD_SHIM

SCRIPT = f"""
import sys
sys.path[:] = [{str(BOARD_SHIM)!r}]
import machine
p = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
p.irq(handler=lambda pin: None, trigger=machine.Pin.IRQ_RISING)
w = machine.WDT(timeout=5000)
w.feed()
w.feed()
print(machine.PWRON_RESET, machine.WDT_RESET, machine.reset_cause(), p.value(), w.feeds)
print(machine.unique_id().hex(), machine.freq())
machine.reset()
"""


def test_machine_shim_constants_and_reset(tmp_path: Path) -> None:
    """ESP32 constants, reset_cause from the rig, unique_id from the board file, reset() exit 86."""
    board = tmp_path / "board.json"
    board.write_text(json.dumps({"uart": {}, "i2c": {}, "unique_id": "a1b2c3d4e5f6"}))
    out = micropython.run("-c", SCRIPT, board=board, env={"STREETSENSE_RESET_CAUSE": "3"},
                          timeout=10)
    lines = out.stdout.splitlines()
    assert out.returncode == 86, out.stderr
    assert lines[0] == "1 3 3 1 2"
    assert lines[1] == "a1b2c3d4e5f6 160000000"
    assert len(lines) == 2  # irq() without a GPIO server is armed quietly, as on a bare pin
