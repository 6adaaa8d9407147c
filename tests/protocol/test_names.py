"""Names for the protocol's numbers: body keys, vehicle classes, the BLE advertisement, node ids."""

import json
import subprocess
from pathlib import Path

import pytest

from streetsense.protocol import Deframer, Frame, advert, names, peek_node_id
from streetsense.protocol import messages as m

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "v1.json"
PREFIXES = {"HELLO": m.HELLO, "DATA": m.DATA, "EVENT": m.EVENT, "STATUS": m.STATUS,
            "LOG": m.LOG, "RESULT": m.RESULT, "ACK": m.ACK, "TIME": m.TIME,
            "CONFIG": m.CONFIG, "COMMAND": m.COMMAND, "OTA_STATUS": m.OTA_STATUS,
            "OTA_BEGIN": m.OTA_BEGIN, "OTA_CHUNK": m.OTA_CHUNK}


def test_body_key_names_match_the_schemas() -> None:
    """Every TYPE_FIELD name is the key SCHEMAS gives that field, and every schema key has one."""
    named = set()
    for name in dir(names):
        prefix, _, field = name.partition("_")
        if prefix == "OTA":  # two-word type names: OTA_STATUS_STATE
            second, _, field = field.partition("_")
            prefix += "_" + second
        if prefix in PREFIXES and isinstance(getattr(names, name), int) and not hasattr(m, name):
            fields = m.SCHEMAS[PREFIXES[prefix]][1]
            key = getattr(names, name)
            assert fields[key][0] == ("event" if name == "EVENT_CODE" else field.lower()), name
            named.add((PREFIXES[prefix], key))
    assert named == {(mtype, key) for mtype, (_, fields) in m.SCHEMAS.items() for key in fields}


def test_code_names() -> None:
    """Result codes, event codes, vehicle classes and log levels have their words."""
    assert names.RESULT_NAMES[m.RESULT_BAD_ARGS] == "BAD_ARGS" and len(names.RESULT_NAMES) == 4
    assert names.EVENT_NAMES == {m.EVENT_VEHICLE: "vehicle"}
    assert names.VEHICLE_CLASSES[names.VEHICLE_HEAVY] == "heavy_vehicle"
    assert names.LOG_LEVEL_NAMES[m.LOG_WARNING] == "warning"


def test_peek_node_id_agrees_with_parse_frame() -> None:
    """For every valid vector, the peeked id is the parsed frame's node_id."""
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
    valid = [c for c in cases if "frame" in c]
    for case in valid:
        deframer = Deframer()
        (raw,) = deframer.feed(bytes.fromhex(case["wire"])) + deframer.end()
        assert peek_node_id(raw) == case["frame"]["node_id"], case["name"]
    assert len(valid) > 50


def test_peek_node_id_checks() -> None:
    """No id from bytes that cannot be a v1 frame; a broken CRC still shows whom it claims."""
    raw = Frame(m.LOG, 0xA1B2C3, 1, 1, {1: 6, 2: "x"}).to_bytes()
    assert peek_node_id(raw) == 0xA1B2C3
    assert peek_node_id(raw[:-1] + bytes([raw[-1] ^ 1])) == 0xA1B2C3
    assert peek_node_id(raw[:19]) is None
    assert peek_node_id(b"\x20" + raw[1:]) is None
    assert peek_node_id(b"\x11" + raw[1:]) == 0xA1B2C3


def test_advert_layout() -> None:
    """The manufacturer data is 09 FF FF FF 01 + node id (u32 BE) + kind code (SPEC §1.3)."""
    assert advert.manufacturer_data(42, "traffic") == bytes.fromhex("09ffffff010000002a02")
    payload = advert.advert_payload(42, "traffic")
    assert advert.parse_advert_payload(payload) == (42, "traffic")
    assert advert.parse_advert_payload(advert.advert_payload(7, "unknown-kind")) == (7, None)
    assert advert.parse_advert_payload(b"\x02" + payload[1:]) is None  # another format
    assert advert.parse_advert_payload(payload[:5]) is None


@pytest.mark.micropython
def test_names_run_on_micropython(micropython: str, mp_path: Path) -> None:
    """The device can import the names, the advert layout and peek_node_id."""
    script = (
        f"import sys; sys.path.insert(0, {str(mp_path)!r})\n"
        "from streetsense.protocol import names, advert, peek_node_id, Frame\n"
        "raw = Frame(5, 42, 1, 1, {1: 6, 2: 'x'}).to_bytes()\n"
        "print(names.DATA_READINGS, advert.manufacturer_data(42, 'traffic').hex(),"
        " peek_node_id(raw))\n"
    )
    out = subprocess.run([micropython, "-c", script], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    assert out == ["4", "09ffffff010000002a02", "42"]
