"""Differential fuzz: the node's codec (MicroPython) and the gateway's (CPython) always agree.

A short run here; ``make fuzz`` runs 1,000,000 inputs (STREETSENSE_FUZZ_INPUTS and
STREETSENSE_FUZZ_SEED set this test's count and seed).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from streetsense.protocol import Deframer, parse_frame
from tests.protocol.differential import CAPTURES, run

pytestmark = pytest.mark.micropython

INPUTS = int(os.environ.get("STREETSENSE_FUZZ_INPUTS", "20000"))
SEED = int(os.environ.get("STREETSENSE_FUZZ_SEED", "0"))


def test_codecs_agree_on_random_and_mutated_frames(micropython: str, mp_path: Path) -> None:
    """Same verdict (error class and field, or every decoded field and the re-encoding) on both
    interpreters for every input made from the vectors and the captured frames."""
    result = run(INPUTS, micropython=micropython, mp_path=mp_path, seed=SEED)
    print(result.summary())
    assert result.disagreements == [], "\n".join(result.details)
    assert result.count == INPUTS
    # The inputs get past every check: frames decode, and each stage rejects some.
    for kind in ("frame", "MalformedFrame:cobs", "NeedMoreBytes:length", "BadCRC:crc",
                 "UnsupportedVersion:version", "UnknownNode:node_id", "BadTag:tag",
                 "MalformedBody:key", "MalformedBody:depth", "MalformedBody:readings",
                 "MalformedBody:settings"):
        assert result.kinds[kind] > 0, kind


def test_a_disagreement_is_found(micropython: str, mp_path: Path, tmp_path: Path) -> None:
    """A device codec that takes a bool map key for an int (the CPython bug of issue 18)
    disagrees, and the run shows the input and both verdicts."""
    broken = Path(shutil.copytree(mp_path, tmp_path / "broken"))
    mpack = broken / "streetsense" / "protocol" / "mpack.py"
    text = mpack.read_text()
    assert "or isinstance(key, bool)" in text
    mpack.write_text(text.replace("or isinstance(key, bool)", "and False"))
    result = run(3000, micropython=micropython, mp_path=broken, seed=SEED)
    assert result.disagreements
    assert "MicroPython:" in result.details[0] and '"wire"' in result.details[0]


def test_captured_frames_pass_the_clarified_rules() -> None:
    """Every frame captured from the emulated nodes and the gateway parses, tag checked:
    live nodes already send what SPEC.md's clarified rules require."""
    capture = json.loads(CAPTURES.read_text(encoding="utf-8"))
    types = set()
    for frame in capture["frames"]:
        key = capture["keys"].get(str(frame["node_id"]))
        (raw,) = Deframer().feed(bytes.fromhex(frame["wire"]))
        assert isinstance(raw, bytes)
        parsed = parse_frame(raw, bytes.fromhex(key) if key else None)
        assert parsed.verified is (key is not None)
        types.add(parsed.type_name)
    assert len(capture["frames"]) >= 150
    assert types >= {"hello", "data", "event", "status", "ack", "time"}
