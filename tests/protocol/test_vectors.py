"""Golden vectors (protocol/vectors/v1.json) under CPython and under MicroPython."""

import fnmatch
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streetsense.protocol import Deframer, Frame, ProtocolError, errors, parse_frame
from streetsense.protocol import messages as m
from streetsense.protocol.body import packb
from tests.protocol.protocol_helpers import from_tagged as read_tagged
from tests.protocol.protocol_helpers import same

HERE = Path(__file__).resolve().parent
PROTOCOL = HERE.parents[1] / "protocol"
VECTORS = PROTOCOL / "vectors" / "v1.json"
ADAPTER = PROTOCOL / "vectors" / "adapter.py"
DOC = json.loads(VECTORS.read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in DOC["cases"]}
MAKE_VECTORS = VECTORS.parent / "make_vectors.py"


def from_tagged(value: Any) -> Any:
    """Strict reader of the tagged JSON body form: a JSON object must be one known tag."""
    return read_tagged(value, strict=True)


def key_arg(key: str | None) -> Any:
    if key == "unknown":
        return lambda node_id: None
    return None if key is None else bytes.fromhex(key)


def outcome(case: dict[str, Any]) -> Frame | ProtocolError:
    deframer = Deframer()
    items = deframer.feed(bytes.fromhex(case["wire"])) + deframer.end()
    assert len(items) == 1, items
    item = items[0]
    if isinstance(item, ProtocolError):
        return item
    assert isinstance(item, bytes)
    try:
        return parse_frame(item, key_arg(case["key"]))
    except ProtocolError as exc:
        return exc


def encoded(fields: dict[str, Any], key: Any) -> str | ProtocolError:
    frame = Frame(fields["type"], fields["node_id"], fields["boot"], fields["seq"],
                  from_tagged(fields["body"]), fields["flags"], fields["version"])
    try:
        return frame.encode(key).hex()
    except ProtocolError as exc:
        return exc


def error_of(got: Any) -> tuple[str, str | None]:
    assert isinstance(got, ProtocolError), got
    return type(got).__name__, got.field


@pytest.mark.parametrize("name", sorted(CASES))
def test_vector_cpython(name: str) -> None:
    """Each golden case deframes and parses (or encodes) under CPython as recorded."""
    case = CASES[name]
    key = key_arg(case["key"])
    if "encode" in case:
        got = encoded(case["encode"], key)
        assert error_of(got) == (case["error"]["class"], case["error"]["field"])
        return
    got = outcome(case)
    if "error" in case:
        assert error_of(got) == (case["error"]["class"], case["error"]["field"])
        return
    assert isinstance(got, Frame), got
    want = case["frame"]
    header = {
        "version": got.version, "type": got.type, "type_name": got.type_name,
        "flags": got.flags, "node_id": got.node_id, "boot": got.boot, "seq": got.seq,
        "tag": got.tag.hex() if got.tag is not None else None, "verified": got.verified,
    }
    assert header == {k: want[k] for k in header}
    body = from_tagged(want["body"])
    assert same(got.body, body)
    if want["body_hex"] is not None:
        assert packb(got.body).hex() == want["body_hex"]
        assert packb(body).hex() == want["body_hex"]
    again = encoded({**want, "body": want["body"]}, key)
    if case.get("reencode", True):
        assert again == case["wire"]
    elif "encode_error" in case:
        assert error_of(again) == (case["encode_error"]["class"], case["encode_error"]["field"])
    else:
        assert again == case["encoded"] != case["wire"]


def test_vectors_cover_the_protocol() -> None:
    """The vector file has >= 30 cases, every error class, every message type and the edge cases."""
    cases = DOC["cases"]
    assert len(cases) >= 30
    assert [c["name"] for c in cases] == sorted(CASES) and len(CASES) == len(cases)
    classes = {
        name for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.ProtocolError) and obj is not errors.ProtocolError
    }
    assert classes <= {c["error"]["class"] for c in cases if "error" in c}
    frames = [c["frame"] for c in cases if "frame" in c]
    assert set(m.SCHEMAS) <= {f["type"] for f in frames}
    assert any(f["type_name"] is None for f in frames)
    assert any(f["version"] == 0x11 for f in frames)
    assert {True, False} <= {f["tag"] is not None for f in frames}
    assert {"unknown", None} <= {c["key"] for c in cases}
    lengths = {
        len(reading)
        for f in frames if f["type"] == m.DATA
        for reading in from_tagged(f["body"])[4]
    }
    assert lengths == {3, 6}
    runs = [
        max(len(run) for run in Deframer().feed(bytes.fromhex(c["wire"]))[0].split(b"\x00"))
        for c in cases if "frame" in c
    ]
    assert max(runs) >= 300  # a frame whose COBS form needs full 0xFF blocks


def spec_vector_names() -> set[str]:
    """The vector names SPEC.md cites: after "vector(s)", and in tables' Vectors columns."""
    text = (PROTOCOL / "SPEC.md").read_text(encoding="utf-8")
    names = set()
    for run in re.findall(r"[Vv]ectors?\s+((?:`[a-z0-9_*]+`(?:,\s*|\s+and\s+|\)|\.)?)+)", text):
        names |= set(re.findall(r"`([a-z0-9_*]+)`", run))
    column = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if not line.startswith("|"):
            column = None
        elif "Vectors" in cells:
            column = cells.index("Vectors")
        elif column is not None and len(cells) > column:
            names |= set(re.findall(r"`([a-z0-9_*]+)`", cells[column]))
    return names


def test_spec_cites_existing_vectors() -> None:
    """Every vector name (or name pattern) SPEC.md cites for a rule is a case of v1.json."""
    cited = spec_vector_names()
    assert len(cited) >= 60
    missing = {name for name in cited if not fnmatch.filter(CASES, name)}
    assert missing == set()


def test_vectors_file_is_generated(tmp_path: Path) -> None:
    """v1.json is exactly what make_vectors.py writes now (no hand edits, no drift)."""
    out = tmp_path / "v1.json"
    subprocess.run([sys.executable, str(MAKE_VECTORS), str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == VECTORS.read_bytes()


def run_conformance(*command: str) -> tuple[int, dict[str, str], str]:
    """``streetsense conformance -- COMMAND``: exit status, verdict line per vector, summary."""
    proc = subprocess.run(
        [sys.executable, "-m", "streetsense.tools.cli", "conformance", "--", *command],
        capture_output=True, text=True, timeout=120, check=False,
    )
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr
    verdicts = {}
    for line in lines[:-1]:
        match = re.match(r"(PASS|FAIL|SKIP) ([a-z0-9_]+)", line)
        assert match, line
        verdicts[match[2]] = line
    return proc.returncode, verdicts, lines[-1]


@pytest.fixture(scope="module")
def mp_results(micropython: str, mp_path: Path) -> dict[str, str]:
    _, verdicts, summary = run_conformance(micropython, str(ADAPTER), str(mp_path))
    assert set(verdicts) == set(CASES), summary
    return verdicts


@pytest.mark.micropython
@pytest.mark.parametrize("name", sorted(CASES))
def test_vector_micropython(name: str, mp_results: dict[str, str]) -> None:
    """Each golden case gives the recorded result under MicroPython (through the conformance
    runner and the device codec's adapter), encoding included."""
    assert mp_results[name].startswith("PASS"), mp_results[name]
