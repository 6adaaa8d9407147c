"""Opening a serial port: missing, busy and forbidden ports give advice, through the CLI."""

from __future__ import annotations

import os

import serial
from click.testing import CliRunner

from streetsense.hil.pty import PtyPair
from streetsense.tools.monitor import monitor
from streetsense.tools.serialport import PortError, open_port
from tests.tools.tools_helpers import Tool


def test_missing_port_says_to_check_the_cable() -> None:
    """A port that does not exist is an error naming the port and the cable, not a traceback."""
    result = CliRunner().invoke(monitor, ["/dev/ttyUSB-streetsense-missing"])
    assert result.exit_code == 1
    assert "serial port /dev/ttyUSB-streetsense-missing does not exist" in result.output
    assert "USB cable" in result.output and "Traceback" not in result.output


def test_busy_port_names_the_program_holding_it(tool: Tool, pty: PtyPair) -> None:
    """A port another process holds exclusively is reported busy, with that process's PID."""
    with serial.Serial(pty.path, exclusive=True):
        proc = tool("monitor", pty.path)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert f"serial port {pty.path} is busy: PID {os.getpid()} (" in err
    assert "Close that program" in err


def test_no_permission_gives_the_dialout_command(pty: PtyPair) -> None:
    """EACCES on open gives the exact usermod line and says a new login is needed."""
    read_end, write_end = os.pipe()
    os.chmod(pty.path, 0o600 if os.geteuid() == 0 else 0o000)
    child = os.fork()
    if child == 0:  # the child drops root (if it has it), so the kernel refuses the open
        message = "opened"
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            open_port(pty.path).close()
        except PortError as exc:
            message = exc.message
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as stream:
        message = stream.read()
    assert message.startswith(f"no permission to open {pty.path}")
    assert "    sudo usermod -aG dialout $USER\n" in message
    assert "log out and log in again" in message
