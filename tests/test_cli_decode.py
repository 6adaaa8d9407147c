"""`streetsense decode`: wire bytes to JSON lines, through the real console script."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from streetsense.protocol import FLAG_ACK_REQ, Frame
from streetsense.protocol import messages as m
from streetsense.tools.cli import main

KEY = bytes(range(32))


def _wire() -> bytes:
    body = {1: 1764115200, 2: m.CLOCK_UTC, 3: 60, 4: [[m.channel(2), -1, 312, 250, 400, 60]]}
    return Frame(m.DATA, 42, 3, 7, body, FLAG_ACK_REQ).encode(KEY)


def test_decode_hex_prints_named_fields() -> None:
    """A hex argument decodes to one JSON line with the header and named body fields."""
    result = CliRunner().invoke(main, ["decode", _wire().hex()])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output)
    assert line["type"] == "data"
    assert (line["node_id"], line["boot"], line["seq"]) == (42, 3, 7)
    assert line["body"]["readings"] == [[0x02, -1, 312, 250, 400, 60]]
    assert line["signed"] is True


def test_decode_file_reports_bad_frame_and_keeps_going(tmp_path: Path) -> None:
    """A corrupted frame is reported with its error class, the next one still decodes, exit 1."""
    good = _wire()
    bad = bytearray(good)
    bad[10] ^= 0x01
    capture = tmp_path / "capture.bin"
    capture.write_bytes(bytes(bad) + good)
    proc = subprocess.run(
        [sys.executable, "-m", "streetsense.tools.cli", "decode", str(capture)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines[0]["error"] == "BadCRC" and lines[0]["field"] == "crc"
    assert lines[1]["type"] == "data"


def test_decode_rejects_non_hex_with_usage_error() -> None:
    """An argument that is neither a file nor hex is a usage error that says so."""
    result = CliRunner().invoke(main, ["decode", "not-hex-zz"])
    assert result.exit_code == 2
    assert "neither a file nor hex" in result.output
