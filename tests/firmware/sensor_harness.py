"""CPython side of the driver tests: an emulated board file and a MicroPython driver process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from streetsense.hil import micropython
from streetsense.hil.node import BOARD_SHIM, FIRMWARE

SCRIPT = Path(__file__).with_name("mp_driver.py")


class DriverError(Exception):
    """The driver raised on the MicroPython side; `name` is its exception class."""

    def __init__(self, name: str, msg: str) -> None:
        super().__init__(f"{name}: {msg}")
        self.name = name
        self.msg = msg


class MpDriver:
    """One MicroPython process running tests/firmware/mp_driver.py on the emulated board."""

    def __init__(self, board_file: Path) -> None:
        self.board_file = board_file
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> MpDriver:
        self.proc = await micropython.start(
            SCRIPT, BOARD_SHIM, FIRMWARE, board=self.board_file,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def call(self, line: str, timeout_s: float = 5.0) -> Any:
        """Send one command line; return its result or raise DriverError."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout_s):
            reply = await self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"MicroPython exited (status {await self.proc.wait()})")
        result = json.loads(reply)
        if "err" in result:
            raise DriverError(result["err"], result["msg"])
        return result["ok"]


def write_board(tmp_path: Path, *, uart: str | None = None, i2c: str | None = None) -> Path:
    """The board description machine.py reads (STREETSENSE_BOARD)."""
    desc: dict[str, Any] = {"uart": {}, "i2c": {}}
    if uart:
        desc["uart"]["1"] = uart
    if i2c:
        desc["i2c"]["0"] = i2c
    path = tmp_path / "board.json"
    path.write_text(json.dumps(desc))
    return path
