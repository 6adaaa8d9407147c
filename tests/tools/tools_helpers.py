"""Helpers for the technician-tool tests: the tools as processes (their serial ports are
``streetsense.hil.pty.PtyPair``s)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

Tool = Callable[..., subprocess.Popen[str]]  # the `tool` fixture


def start_tool(command: str, *args: str) -> subprocess.Popen[str]:
    """Start ``streetsense.tools.<command>`` as its own process, as a technician would.

    Tests get it through the ``tool`` fixture, which kills what is still running at teardown.
    """
    code = f"from streetsense.tools.{command} import {command}; {command}()"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_line(proc: subprocess.Popen[str], timeout_s: float = 10.0, *,
              stdout: bool = False) -> str:
    """The next line of ``proc``'s stderr (or stdout); fails if none comes in ``timeout_s``.

    Read byte by byte from the pipe, so nothing waits in a Python buffer where a later
    ``select`` would not see it.
    """
    stream = proc.stdout if stdout else proc.stderr
    assert stream is not None
    fd = stream.fileno()
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        byte = os.read(fd, 1) if ready else b""
        if not byte:
            proc.kill()
            pytest.fail(f"no complete line within {timeout_s} s (got {line!r})")
        line += byte
    return line.decode()
