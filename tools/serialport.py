"""Serial ports for the technician tools: open them with plain errors, move protocol frames.

A technician at the pole needs to know *what to do* when a port will not open, so every
failure becomes a ``PortError`` (a ``click.ClickException``) with one sentence of advice:
a missing port lists the ports that do exist, a busy port names the programs holding it,
no permission gives the exact ``usermod`` line for the ``dialout`` group.
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from pathlib import Path

import click
import serial
from serial.tools import list_ports

from streetsense.protocol import Deframer, Frame, ProtocolError, names
from streetsense.protocol import messages as m

__all__ = ["DEFAULT_BAUD", "FrameLink", "PortError", "open_port"]

DEFAULT_BAUD = 115200  # the node's link UART (contracts: UART 2 at 115200)
_POLL_S = 0.05  # longest single blocking read, so deadlines are kept closely


class PortError(click.ClickException):
    """A serial port could not be opened or used; the message says what to do."""


def open_port(path: str, *, baud: int = DEFAULT_BAUD) -> serial.Serial:
    """Open ``path`` exclusively (no second reader may split the byte stream)."""
    try:
        return serial.Serial(path, baud, timeout=_POLL_S, exclusive=True)
    except serial.SerialException as exc:
        raise PortError(explain_open_error(path, exc)) from None
    except ValueError as exc:  # pyserial's answer to an impossible baud rate
        raise PortError(f"cannot use {path} at {baud} baud: {exc}") from None


def explain_open_error(path: str, exc: serial.SerialException) -> str:
    """The advice for a port that failed to open with ``exc``."""
    code = exc.errno
    if code == errno.ENOENT:
        present = sorted(p.device for p in list_ports.comports())
        listing = ", ".join(present) if present else "none"
        return (f"serial port {path} does not exist: check that the USB cable is plugged in "
                f"and the node is powered (serial ports present: {listing}).")
    if code in (errno.EACCES, errno.EPERM):
        return (f"no permission to open {path}: add your user to the dialout group with\n"
                f"    sudo usermod -aG dialout $USER\n"
                f"then log out and log in again (group changes apply to new logins only).")
    if code in (errno.EAGAIN, errno.EBUSY):
        holders = _holders(path)
        who = ", ".join(holders) if holders else "another program"
        return (f"serial port {path} is busy: {who} has it open. Close that program "
                f"(a gateway, screen, minicom, mpremote or another streetsense command) "
                f"and try again.")
    if code == errno.ENOTTY:
        return f"{path} is not a serial port: give the node's port, e.g. /dev/ttyUSB0."
    return f"cannot open serial port {path}: {exc}"


def _holders(path: str) -> list[str]:
    """``"PID 123 (screen)"`` for every other process with ``path`` open (those we may see)."""
    try:
        target = os.stat(path).st_rdev
    except OSError:
        return []
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(fd.stat().st_rdev == target for fd in fds):
                name = (proc / "comm").read_text().strip()
                found.append(f"PID {proc.name} ({name})")
        except OSError:
            continue
    return found


class FrameLink:
    """Decoded frames (or the protocol errors met instead) from an open port, and writes."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self._deframer = Deframer()
        self._items: deque[bytes | ProtocolError] = deque()

    def read(self, timeout_s: float) -> bytes | ProtocolError | None:
        """The next frame's bytes or deframing error, or None when ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not self._items:
            if time.monotonic() >= deadline:
                return None
            try:
                data = self.port.read(self.port.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                raise PortError(f"serial port {self.port.port} stopped working: was the cable "
                                f"unplugged? Plug it back in and start the command again. "
                                f"({exc})") from None
            if data:
                self._items.extend(self._deframer.feed(data))
        return self._items.popleft()

    def send(self, wire: bytes) -> None:
        """Write encoded frames (COBS with delimiters) and wait until they are out."""
        try:
            self.port.write(wire)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"cannot write to serial port {self.port.port} ({exc}): "
                            f"was the cable unplugged?") from None

    def ack(self, frame: Frame, key: bytes | None) -> None:
        """Acknowledge ``frame`` as a gateway would (SPEC §6.3: header seq 0, signed with
        the node's key when there is one)."""
        ack = Frame(m.ACK, frame.node_id, frame.boot, 0,
                    {names.ACK_BOOT: frame.boot, names.ACK_SEQ: frame.seq})
        self.send(ack.encode(key))
