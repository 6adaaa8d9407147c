"""Golden vectors (protocol/vectors/v1.json) under CPython and under MicroPython."""

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from protocol_helpers import from_tagged as read_tagged
from protocol_helpers import same

from streetsense.protocol import Deframer, Frame, ProtocolError, cobs, errors, parse_frame
from streetsense.protocol import messages as m
from streetsense.protocol.body import packb

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "v1.json"
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
    items = Deframer().feed(bytes.fromhex(case["wire"]))
    assert len(items) == 1, items
    item = items[0]
    if isinstance(item, ProtocolError):
        return item
    assert isinstance(item, bytes)
    try:
        return parse_frame(item, key_arg(case["key"]))
    except ProtocolError as exc:
        return exc


@pytest.mark.parametrize("name", sorted(CASES))
def test_vector_cpython(name: str) -> None:
    """Each golden case deframes and parses under CPython as recorded and re-encodes to its wire."""
    case = CASES[name]
    got = outcome(case)
    if "error" in case:
        assert isinstance(got, ProtocolError), got
        assert (type(got).__name__, got.field) == (case["error"]["class"], case["error"]["field"])
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
    assert packb(got.body).hex() == want["body_hex"]
    assert packb(body).hex() == want["body_hex"]
    if case.get("reencode", True):
        assert got.encode(key_arg(case["key"])).hex() == case["wire"]
    else:
        assert got.signed and not got.verified


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
        max(len(run) for run in cobs.decode(bytes.fromhex(c["wire"])[:-1]).split(b"\x00"))
        for c in cases if "frame" in c
    ]
    assert max(runs) >= 300  # a frame whose COBS form needs full 0xFF blocks


def test_vectors_file_is_generated(tmp_path: Path) -> None:
    """v1.json is exactly what make_vectors.py writes now (no hand edits, no drift)."""
    out = tmp_path / "v1.json"
    subprocess.run([sys.executable, str(MAKE_VECTORS), str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == VECTORS.read_bytes()


def _run_script(interpreter: str, *extra: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [interpreter, str(HERE / "mp_vectors.py"), str(VECTORS), *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert lines and lines[-1].get("summary"), proc.stdout + proc.stderr
    return lines


def test_mp_vectors_script_runs_under_cpython() -> None:
    """mp_vectors.py (the device runner) passes every case when debugged under CPython."""
    lines = _run_script(sys.executable)
    failures = [line for line in lines[:-1] if not line["ok"]]
    assert failures == []
    assert lines[-1]["total"] == len(CASES)


@pytest.fixture(scope="module")
def mp_results(micropython: str, mp_path: Path) -> dict[str, dict[str, Any]]:
    lines = _run_script(micropython, str(mp_path))
    assert lines[-1]["implementation"] == "micropython"
    assert lines[-1]["total"] == len(CASES)
    return {line["name"]: line for line in lines[:-1]}


@pytest.mark.micropython
@pytest.mark.parametrize("name", sorted(CASES))
def test_vector_micropython(name: str, mp_results: dict[str, dict[str, Any]]) -> None:
    """Each golden case gives the recorded result under MicroPython, re-encoding included."""
    result = mp_results[name]
    assert result["ok"], result["detail"]
