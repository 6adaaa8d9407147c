"""`streetsense decode`: wire bytes to JSON lines, through the real console script."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from streetsense.protocol import FLAG_ACK_REQ, FLAG_DOWNLINK, Frame
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


def _long_wire() -> bytes:
    """An air-quality HELLO as a live node sends it: well over 127 bytes on the wire."""
    body = {1: "air-quality", 2: "0.1.0", 3: [1, 0], 4: ["pms5003", "scd41", "bme280"], 5: 1,
            6: 3, 7: ["spool", "time", "config", "reboot", "identify", "factory_reset"],
            8: 1234}
    wire = Frame(m.HELLO, 42, 3, 0, body, FLAG_ACK_REQ).encode(KEY)
    assert len(wire.hex()) > 255
    return wire


def test_decode_hex_of_any_length() -> None:
    """A hex argument longer than a file name may be (255 chars) decodes, no OSError."""
    proc = subprocess.run(
        [sys.executable, "-m", "streetsense.tools.cli", "decode", _long_wire().hex()],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert (line["type"], line["body"]["kind"]) == ("hello", "air-quality")


def test_decode_stdin() -> None:
    """'-' reads raw wire bytes from stdin."""
    proc = subprocess.run(
        [sys.executable, "-m", "streetsense.tools.cli", "decode", "-"],
        input=_long_wire() + _wire(), capture_output=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["type"] for x in proc.stdout.splitlines()] == ["hello", "data"]


def test_decode_hex_without_final_delimiter() -> None:
    """Hex is whole frames: the last 0x00 may be left out."""
    result = CliRunner().invoke(main, ["decode", _wire()[:-1].hex()])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["type"] == "data"


def test_decode_file_cut_mid_frame(tmp_path: Path) -> None:
    """A capture that ends inside a frame: the tail is a cut-off frame (NeedMoreBytes), exit 1."""
    capture = tmp_path / "capture.bin"
    capture.write_bytes(_wire() + _wire()[:-1])
    result = CliRunner().invoke(main, ["decode", str(capture)])
    assert result.exit_code == 1
    first, second = (json.loads(x) for x in result.output.splitlines())
    assert first["type"] == "data"
    assert (second["error"], second["reason"], second["field"]) == (
        "NeedMoreBytes", "truncated", "length")


def test_decode_of_a_provisioning_config_never_prints_the_key() -> None:
    """A captured provisioning CONFIG decodes with the key's fingerprint in place of the key."""
    key = bytes(range(100, 132))
    body = {1: 1, 2: {"node_id": 42, "key": key.hex(), "kind": "air-quality"}}
    wire = Frame(m.CONFIG, 0, 1, 1, body, FLAG_DOWNLINK).encode(None)
    result = CliRunner().invoke(main, ["decode", wire.hex()])
    assert result.exit_code == 0, result.output
    assert key.hex() not in result.output
    settings = json.loads(result.output)["body"]["settings"]
    assert settings["key"].startswith("fingerprint:") and settings["node_id"] == 42
