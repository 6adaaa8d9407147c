"""The HIL plugin itself, run as a real pytest session in a subprocess on small test files."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from streetsense.hil.plugin import node_key

TESTS = '''
import pytest

@pytest.mark.needs_power
def test_power_only():
    """needs power"""

@pytest.mark.needs_environment
def test_environment_only():
    """needs environment"""

def test_undeclared(environment):
    """uses environment without its marker"""

@pytest.mark.soak
def test_long():
    """a soak variant"""

def test_plain():
    """no HIL at all"""

def test_fails_with_artefacts(artefacts):
    """leaves artefacts"""
    artefacts.add_text("console.txt", lambda: "boot 7\\n")
    assert 1 == 2
'''


# Installed with its pytest11 entry point the plugin loads by itself; before that, by -p.
LOAD = [] if any(e.name == "streetsense_hil" for e in entry_points(group="pytest11")) \
    else ["-p", "streetsense.hil.plugin"]


ARTEFACT_TESTS = '''
import os

import pytest

from streetsense.hil.plugin import node_key


def test_fails_while_asked(artefacts):
    """fails while SAMPLE_FAIL is set"""
    artefacts.add_text("console.txt", lambda: "boot 7\\n")
    assert not os.environ.get("SAMPLE_FAIL")


def test_fails_showing_a_key(artefacts):
    """a registered key in the failure and in a file"""
    key = node_key(1, 42)
    artefacts.add_secret(key)
    artefacts.add_text("console.txt", lambda: f"key {key.hex()} {key!r}\\n")
    assert key == bytes(32)


@pytest.mark.board(kind="air-quality")
async def test_board_fails_showing_its_key(board, gateway, observer, strategy):
    """the board fixture's key in the failure"""
    await strategy.transition("provisioned")
    assert (board, board.key) == (None, bytes(32))
'''


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
         tests: str = TESTS) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(tests)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREETSENSE_HIL")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *LOAD, "-p", "no:cacheprovider",
         "--strict-markers", "-rs", "-v", "--hil-artefacts", str(tmp_path / "art"), *args],
        cwd=tmp_path, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=60)


def test_capabilities_markers_and_soak_on_the_default_rig(tmp_path: Path) -> None:
    """Emulated rig: capability tests run, an undeclared need fails, soak is deselected."""
    result = _run(tmp_path)
    out = result.stdout
    assert "hil: emulated air-quality board" in out
    assert "test_power_only PASSED" in out and "test_environment_only PASSED" in out
    assert "uses a fixture needing 'environment': mark it @pytest.mark.needs_environment" in out
    assert "test_long" not in out.split("short test summary")[0].replace("deselected", "")
    assert "1 deselected" in out


def test_bench_board_from_env_skips_what_it_cannot_do(tmp_path: Path) -> None:
    """STREETSENSE_HIL_BOARD picks a bench board; tests needing what it lacks skip with reasons."""
    result = _run(tmp_path, "-k", "only", env={"STREETSENSE_HIL_BOARD": "serial:/dev/null"})
    out = result.stdout
    assert "hil: air-quality board on /dev/null" in out
    assert "cannot: power (switch the board off and on)" in out
    assert "cannot: environment (set the air and drive vehicles past the detectors)" in out
    assert result.returncode == 0, out


def test_soak_variants_run_with_the_option(tmp_path: Path) -> None:
    """--hil-soak keeps the soak variants."""
    result = _run(tmp_path, "--hil-soak", "-k", "long")
    assert "test_long PASSED" in result.stdout


def test_failure_leaves_an_artefact_folder(tmp_path: Path) -> None:
    """A failed test writes its sources and a summary into <artefacts>/<test id>/."""
    result = _run(tmp_path, "-k", "artefacts")
    folder = tmp_path / "art" / "test_sample.py__test_fails_with_artefacts"
    assert (folder / "console.txt").read_text() == "boot 7\n"
    summary = (folder / "summary.txt").read_text()
    assert "phase: call" in summary and "assert 1 == 2" in summary
    assert "HIL artefacts" in result.stdout


def test_bad_board_option_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown --hil-board is refused with a sentence saying what is accepted."""
    result = _run(tmp_path, "--hil-board", "usb:whatever")
    assert result.returncode == 4
    assert "--hil-board must be 'emulated' or 'serial:/dev/PORT[,...]'" in result.stderr


def test_missing_serial_port_is_a_usage_error(tmp_path: Path) -> None:
    """A bench board on a port that is not there is refused once, before any test runs."""
    result = _run(tmp_path, "--hil-board", "serial:/dev/ttyUSB-not-here")
    assert result.returncode == 4
    assert "no serial port /dev/ttyUSB-not-here" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _shows_key_bytes(text: str, key: bytes) -> list[int]:
    """Offsets of the runs of 4 key bytes that ``text`` shows, as hex or as a bytes literal."""
    return [start for start in range(len(key) - 3)
            if key[start:start + 4].hex() in text.lower()
            or repr(key[start:start + 4])[2:-1] in text]


def test_failed_test_artefacts_never_show_key_bytes(tmp_path: Path) -> None:
    """The summary and every file of a failed test are free of the board's key (a bytes
    repr in pytest's explanation showed most of it) and of keys a test registers."""
    result = _run(tmp_path, "-o", "asyncio_mode=auto", "-k", "key", tests=ARTEFACT_TESTS)
    assert "2 failed" in result.stdout, result.stdout
    key = node_key(1, 42)
    folders = sorted((tmp_path / "art").iterdir())
    assert [f.name.rsplit("__", 1)[1] for f in folders] == [
        "test_board_fails_showing_its_key", "test_fails_showing_a_key"]
    for folder in folders:
        summary = (folder / "summary.txt").read_text()
        assert "<redacted>" in summary and "assert" in summary
        for path in folder.iterdir():
            assert not _shows_key_bytes(path.read_text(errors="replace"), key), path


def test_artefacts_of_an_earlier_failure_go_when_the_test_passes(tmp_path: Path) -> None:
    """A test that failed, then passes: its old artefact folder is removed."""
    folder = tmp_path / "art" / "test_sample.py__test_fails_while_asked"
    _run(tmp_path, "-k", "asked", env={"SAMPLE_FAIL": "1"}, tests=ARTEFACT_TESTS)
    assert (folder / "console.txt").exists()
    result = _run(tmp_path, "-k", "asked", tests=ARTEFACT_TESTS)
    assert "1 passed" in result.stdout and not folder.exists()
