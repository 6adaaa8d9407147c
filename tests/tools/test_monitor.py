"""`streetsense monitor`: frames written into a real PTY, read back by the command's process."""

from __future__ import annotations

import json
import os
import tty
from pathlib import Path

import pytest
from click.testing import CliRunner

from streetsense.gateway.registry import NodeInfo, append_node
from streetsense.hil.pty import PtyPair
from streetsense.protocol import FLAG_ACK_REQ, Frame
from streetsense.protocol import messages as m
from streetsense.protocol.cobs import encode_delimited
from streetsense.tools.monitor import monitor
from tests.support.fake_node import ProvisioningNode
from tests.tools.tools_helpers import Tool, wait_line

KEY = bytes(range(32))
HELLO_BODY = {1: "streetsense-node", 2: "0.1.0", 3: [1, 0], 4: ["pms5003", "scd41"], 5: 1, 6: 3}
DATA_BODY = {1: 35, 2: m.CLOCK_UPTIME, 3: 60,
             4: [[m.channel(2), -1, 312, 250, 400, 60], [m.channel(4), 0, 415]]}
VEHICLE = {1: 36, 2: m.CLOCK_UPTIME, 3: m.EVENT_VEHICLE,
           4: {"lane": 1, "dir": 1, "speed_dkmh": 325, "length_cm": 180, "class": 1}}


def _frames() -> list[bytes]:
    hello = Frame(m.HELLO, 42, 3, 0, HELLO_BODY, FLAG_ACK_REQ).encode(KEY)
    data = Frame(m.DATA, 42, 3, 1, DATA_BODY, FLAG_ACK_REQ).to_bytes(KEY)
    bad_crc = bytearray(Frame(m.DATA, 42, 3, 2, DATA_BODY, FLAG_ACK_REQ).encode(KEY))
    bad_crc[20] ^= 0x40  # a flipped bit inside the COBS-encoded body
    event = Frame(m.EVENT, 42, 3, 3, VEHICLE, FLAG_ACK_REQ).encode(KEY)
    return [hello, b"line noise\r\n\x00", encode_delimited(data), bytes(bad_crc), event]


def test_table_shows_each_frame_and_counts_failures(tool: Tool, pty: PtyPair) -> None:
    """Good frames become rows with plain readings; garbage and a bad CRC are shown and counted."""
    proc = tool("monitor", pty.path, "--count", "3")
    assert "monitoring" in wait_line(proc)
    for wire in _frames():
        pty.write(wire)
    out, _ = proc.communicate(timeout=10)
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["time", "node", "type"]
    assert "hello" in rows[1] and "sensors pms5003, scd41" in rows[1]
    assert "unchecked" in rows[1]  # signed, but no registry was given to check the tag
    assert "FAILED" in rows[2] and "malformed_frame" in rows[2]
    assert "PM2.5 31.2 µg/m³ (min 25.0, max 40.0, n 60); CO2 415 ppm" in rows[3]
    assert "FAILED" in rows[4] and "bad_crc" in rows[4]
    assert "vehicle lane 1 A→B 32.5 km/h 1.80 m motorbike" in rows[5]
    assert rows[-1] == "3 frames (0 verified), 2 failed: bad_crc 1, malformed_frame 1"
    assert proc.returncode == 1


def test_json_lines_carry_named_bodies_and_errors(tool: Tool, pty: PtyPair) -> None:
    """--json prints one object per frame or failure, then the totals, nothing else on stdout."""
    proc = tool("monitor", pty.path, "--json", "--count", "2")
    wait_line(proc)
    for wire in _frames()[:3]:
        pty.write(wire)
    out, _ = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x.get("type") or x.get("error") for x in lines[:3]] == [
        "hello", "MalformedFrame", "data"]
    assert lines[2]["body"]["readings"][0] == [2, -1, 312, 250, 400, 60]
    assert (lines[2]["node_id"], lines[2]["boot"], lines[2]["seq"]) == (42, 3, 1)
    assert lines[3] == {"totals": {"frames": 2, "verified": 0,
                                   "failed": {"malformed_frame": 1}}}


def test_config_key_is_shown_as_fingerprint_only(tool: Tool, pty: PtyPair) -> None:
    """A CONFIG seen on the wire never prints the node key, only its fingerprint."""
    settings = {"node_id": 42, "key": KEY.hex(), "kind": "air-quality"}
    proc = tool("monitor", pty.path, "--seconds", "3", "--count", "1")
    wait_line(proc)
    pty.write(Frame(m.CONFIG, 0, 1, 1, {1: 7, 2: settings}).encode())
    out, _ = proc.communicate(timeout=10)
    assert KEY.hex() not in out
    assert "key=fingerprint:630dcd29" in out
    assert proc.returncode == 0


def test_registry_keys_verify_tags_and_catch_a_wrong_one(tool: Tool, pty: PtyPair,
                                                        tmp_path: Path) -> None:
    """With --registry, a node's frames are verified and named; a wrong key is a bad_tag."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(42, "HN-0042", "air-quality", KEY))
    proc = tool("monitor", pty.path, "--registry", str(registry), "--count", "2")
    wait_line(proc)
    pty.write(_frames()[0])
    pty.write(Frame(m.DATA, 42, 3, 1, DATA_BODY, FLAG_ACK_REQ).encode(bytes(32)))
    pty.write(_frames()[-1])
    out, _ = proc.communicate(timeout=10)
    rows = out.splitlines()
    assert rows[1].split()[1:3] == ["HN-0042", "hello"] and "verified" in rows[1]
    assert "FAILED" in rows[2] and "bad_tag: HMAC tag does not match (field tag)" in rows[2]
    assert rows[-1] == "2 frames (2 verified), 1 failed: bad_tag 1"


def test_unplugged_port_ends_with_counts_and_advice(tool: Tool) -> None:
    """The port vanishing mid-run (cable pulled) prints the counts and says to plug it back."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.close(slave)
    proc = tool("monitor", path)
    try:
        wait_line(proc)
        os.write(master, _frames()[0])
        assert wait_line(proc, stdout=True).startswith("time")  # the header, then
        assert "hello" in wait_line(proc, stdout=True)  # the frame was read: now pull the plug
    finally:
        os.close(master)  # the other end is gone, as when a USB adapter is pulled out
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert out.splitlines()[-1] == "1 frame (0 verified), 0 failed"
    assert f"serial port {path} stopped working: was the cable unplugged?" in err


@pytest.mark.parametrize("node", [{"node_id": 7, "key": KEY, "kind": "air-quality"}], indirect=True)
def test_ack_lets_the_node_send_past_its_hello(tool: Tool, pty: PtyPair, node: ProvisioningNode,
                                               tmp_path: Path) -> None:
    """--ack acknowledges verified frames with the node's key, so its DATA follows the HELLO."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(7, "HN-0007", "air-quality", KEY))
    proc = tool("monitor", pty.path, "--registry", str(registry), "--ack", "--count", "2")
    out, _ = proc.communicate(timeout=10)
    # (A frame cut by the port opening mid-frame may come first, as FAILED.)
    good = [row.split()[2] for row in out.splitlines()[1:-1] if "FAILED" not in row]
    assert good == ["hello", "data"]
    assert "PM2.5 31.2 µg/m³" in out


def test_ack_without_registry_is_a_usage_error() -> None:
    """Acks must be signed with the node's key, so --ack without --registry is refused."""
    result = CliRunner().invoke(monitor, ["/dev/ttyUSB0", "--ack"])
    assert result.exit_code == 2 and "--ack needs --registry" in result.output
