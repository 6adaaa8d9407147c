"""`streetsense conformance -- CMD`: golden vectors through an implementation, over JSON lines."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from streetsense.protocol import FLAG_SIGNED, Deframer, MalformedBody
from streetsense.protocol.body import unpackb
from streetsense.tools.cli import main

HERE = Path(__file__).resolve().parent
ADAPTER = HERE.parents[1] / "protocol" / "vectors" / "adapter.py"
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "v1.json"
CASES = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]


def _schema_fault(case: dict[str, Any]) -> bool:
    """Whether the case's MalformedBody is a schema fault (its body is valid msgpack)."""
    if case.get("error", {}).get("class") != "MalformedBody":
        return False
    if "encode" in case:
        return case["error"]["field"] not in ("type", "int", "depth", "key")
    (raw,) = Deframer().feed(bytes.fromhex(case["wire"]))
    end = len(raw) - 4 - (8 if raw[2] & FLAG_SIGNED else 0)
    try:
        unpackb(raw[15:end])
    except MalformedBody:
        return False
    return True


SCHEMA_CASES = {c["name"] for c in CASES if _schema_fault(c)}


def conformance(*args: str) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "streetsense.tools.cli", "conformance", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout.splitlines()


def verdicts(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines[:-1]:
        match = re.match(r"(PASS|FAIL|SKIP) ([a-z0-9_]+)", line)
        assert match, line
        found[match[2]] = match[1]
    return found


def test_cpython_codec_conforms() -> None:
    """The gateway's codec (CPython adapter) passes every vector; the summary says it conforms."""
    status, lines = conformance("--", sys.executable, str(ADAPTER))
    assert status == 0, lines
    assert set(verdicts(lines).values()) == {"PASS"} and len(verdicts(lines)) == len(CASES)
    assert lines[-1] == (f"{len(CASES)} vectors: {len(CASES)} passed, 0 failed"
                         " - conforms to protocol v1")


def test_micropython_codec_conforms(micropython: str, mp_path: Path) -> None:
    """The node's codec, run by the MicroPython interpreter, passes every vector the same way."""
    status, lines = conformance("--", micropython, str(ADAPTER), str(mp_path))
    assert status == 0, [line for line in lines if not line.startswith("PASS")]
    assert lines[-1].endswith("- conforms to protocol v1")


def test_broken_implementation_fails() -> None:
    """An implementation that skips the schema check fails exactly the schema vectors, exit 1."""
    assert len(SCHEMA_CASES) >= 30
    status, lines = conformance("--", sys.executable, str(HERE / "broken_adapter.py"))
    assert status == 1
    failed = {name for name, verdict in verdicts(lines).items() if verdict == "FAIL"}
    assert failed == SCHEMA_CASES
    line = next(x for x in lines if x.startswith("FAIL malformed_body_hello_boot_mismatch"))
    assert "expected MalformedBody (field 'boot')" in line
    assert re.fullmatch(rf"{len(CASES)} vectors: {len(CASES) - len(failed)} passed, "
                        rf"{len(failed)} failed", lines[-1])


def test_implementation_that_exits_fails_the_rest() -> None:
    """An implementation that stops after one request: every vector fails, none hangs, exit 1."""
    quitter = "import sys; sys.stdin.readline()"
    status, lines = conformance("--", sys.executable, "-c", quitter)
    assert status == 1
    assert set(verdicts(lines).values()) == {"FAIL"}
    assert "the implementation exited (status 0)" in lines[0]
    assert "not run: the implementation exited" in lines[1]


def test_silent_implementation_times_out() -> None:
    """An implementation that never answers fails after --timeout, the rest are not run."""
    silent = "import sys; sys.stdin.read()"
    status, lines = conformance("--timeout", "0.5", "-k", "ack_", "--", sys.executable, "-c",
                                silent)
    assert status == 1
    assert "no answer within 0.5 s" in lines[0]
    assert all("not run: no answer within 0.5 s" in line for line in lines[1:-1])


def test_decode_only_skips_encoder_cases() -> None:
    """--decode-only sends no encode request: encoder-only vectors are skipped, not failed."""
    status, lines = conformance("--decode-only", "--", sys.executable, str(ADAPTER))
    assert status == 0
    skipped = {name for name, verdict in verdicts(lines).items() if verdict == "SKIP"}
    assert skipped == {c["name"] for c in CASES if "encode" in c}
    assert lines[-1].endswith(f"{len(skipped)} skipped")


def test_usage_errors() -> None:
    """No command, or a -k that matches no vector, is a usage error that says so."""
    result = CliRunner().invoke(main, ["conformance"])
    assert result.exit_code == 2 and "Missing argument" in result.output
    result = CliRunner().invoke(main, ["conformance", "-k", "nothing-like-it", "--", "true"])
    assert result.exit_code == 2 and "no vector name contains" in result.output
    result = CliRunner().invoke(main, ["conformance", "--", "/nonexistent/decoder"])
    assert result.exit_code == 1 and "cannot start '/nonexistent/decoder'" in result.output
