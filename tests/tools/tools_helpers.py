"""Helpers for the technician-tool tests: PTYs as serial ports, the tools as processes."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Pty:
    """A raw PTY pair: tools open ``path``; the test writes and reads the ``master`` fd."""

    master: int
    slave: int
    path: str

    def write(self, data: bytes) -> None:
        os.write(self.master, data)


def tool(command: str, *args: str) -> subprocess.Popen[str]:
    """Start ``streetsense.tools.<command>`` as its own process, as a technician would."""
    code = f"from streetsense.tools.{command} import {command}; {command}()"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_line(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> str:
    """The next line of ``proc``'s stderr; fails if none comes within ``timeout_s``."""
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], timeout_s)
    if not ready:
        proc.kill()
        pytest.fail(f"no line on stderr within {timeout_s} s")
    return proc.stderr.readline()
