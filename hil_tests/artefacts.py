"""What a failed HIL test leaves behind: one folder per test with everything the rig saw.

Fixtures register *sources* with the test's `Artefacts` as they start (the gateway's log,
each node's console, the frames seen on each link, the MQTT transcript); when the test
fails, the plugin asks it to write them all into ``<artefact dir>/<test id>/``. A source
that fails to write leaves a note instead of hiding the others. Artefacts end up in CI
logs, so keys registered with `add_secret` (the board's) are cut out of every file and the
summary: any run of four or more of their bytes, as hex or as a Python bytes literal.

`FrameLog` records the raw bytes crossing a link in both directions and renders them as
frames: hex, then the decoded header and body (the tag is not checked: no key is needed).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streetsense.protocol import Deframer, ProtocolError, parse_frame

__all__ = ["REDACTED", "Artefacts", "FrameLog", "LinkFrame", "folder_name", "redact"]

REDACTED = "<redacted>"
_RUN = 4  # bytes of a secret in a row that count as showing it


def folder_name(nodeid: str) -> str:
    """A file-system-safe folder name for a pytest node id."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.replace("::", "__")).strip("_.")
    return name[:150] or "test"


def _byte_forms(byte: int) -> list[str]:
    """How one byte can look inside a Python bytes literal (``'`` is escaped or not,
    depending on the quotes Python chose for the whole literal)."""
    forms = {repr(bytes([byte]))[2:-1]}
    if byte == 0x27:
        forms.add("\\'")
    return sorted(forms)


def _patterns(secret: bytes) -> list[re.Pattern[str]]:
    """One pattern per run of `_RUN` bytes of ``secret``: its hex or its bytes-literal form."""
    patterns = []
    for start in range(len(secret) - _RUN + 1):
        run = secret[start:start + _RUN]
        literal = "".join("(?:" + "|".join(map(re.escape, _byte_forms(b))) + ")" for b in run)
        patterns.append(re.compile(f"{run.hex()}|{literal}", re.IGNORECASE))
    return patterns


def redact(text: str, secrets: Iterable[bytes]) -> str:
    """``text`` with every run of four or more bytes of a secret replaced by `REDACTED`."""
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        for pattern in _patterns(secret):
            spans.extend(match.span() for match in pattern.finditer(text))
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces, done = [], 0
    for start, end in merged:
        pieces += [text[done:start], REDACTED]
        done = end
    return "".join([*pieces, text[done:]])


def remove_folder(folder: Path) -> None:
    """Remove a folder an earlier failure left (the test passes now)."""
    shutil.rmtree(folder, ignore_errors=True)


class Artefacts:
    """The sources of one test, written on request as files in one folder."""

    def __init__(self) -> None:
        self._sources: list[tuple[str, Callable[[Path], None]]] = []
        self._secrets: list[bytes] = []

    def add_secret(self, secret: bytes) -> None:
        """A key that no written file may show (see `redact`)."""
        if len(secret) >= _RUN and secret not in self._secrets:
            self._secrets.append(secret)

    def add_text(self, name: str, text: Callable[[], str]) -> None:
        """A file ``name`` whose content is ``text()`` at the time of writing."""
        def write(path: Path) -> None:
            path.write_text(text())

        self._sources.append((name, write))

    def add_writer(self, name: str, write: Callable[[Path], None]) -> None:
        """A file ``name`` written by ``write(path)``."""
        self._sources.append((name, write))

    @property
    def names(self) -> list[str]:
        """The file names registered so far."""
        return [name for name, _ in self._sources]

    def write(self, folder: Path, summary: str = "") -> list[Path]:
        """Write every source (and ``summary.txt``) into ``folder``, secrets cut out;
        returns the files."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        if summary:
            (folder / "summary.txt").write_text(redact(summary, self._secrets))
            written.append(folder / "summary.txt")
        for name, write in self._sources:
            path = folder / name
            try:
                write(path)
            except Exception:  # one broken source must not hide the others
                path = path.with_name(path.name + ".error.txt")
                path.write_text(f"could not write {name}:\n{traceback.format_exc()}")
            if self._secrets:
                text = path.read_text(errors="replace")
                path.write_text(redact(text, self._secrets))
            written.append(path)
        return written


@dataclass(frozen=True)
class LinkFrame:
    """One frame (or a deframing error) seen on a link; ``at`` in seconds since the log began."""

    at: float
    direction: str
    raw: bytes | None
    error: str | None

    def describe(self) -> str:
        """Two lines: time, direction and hex; then the decoded frame or the error."""
        head = f"{self.at:10.4f} {self.direction:>4}"
        if self.raw is None:
            return f"{head} !! {self.error}"
        try:
            frame = parse_frame(self.raw)
            decoded = (f"{frame.type_name or frame.type} node={frame.node_id} "
                       f"boot={frame.boot} seq={frame.seq} flags=0x{frame.flags:02x} "
                       f"body={_plain(frame.body)!r}")
        except ProtocolError as exc:
            decoded = f"!! {type(exc).__name__} ({exc.field}): {exc}"
        return f"{head} {self.raw.hex()}\n{'':16}{decoded}"


class FrameLog:
    """Deframes the bytes of each direction of a link (``feed``) and keeps the frames.

    Thread-safe: relays call ``feed`` from their own threads. Keeps the last ``limit`` frames
    (so indexes stay valid until then).
    """

    def __init__(self, limit: int = 20000) -> None:
        self.limit = limit
        self.frames: list[LinkFrame] = []
        self._deframers: dict[str, Deframer] = {}
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def feed(self, direction: str, data: bytes) -> None:
        """Record ``data`` seen going ``direction`` (e.g. "up" node→gateway, "down")."""
        at = time.monotonic() - self._started
        with self._lock:
            deframer = self._deframers.setdefault(direction, Deframer())
            for item in deframer.feed(data):
                if isinstance(item, ProtocolError):
                    self.frames.append(LinkFrame(at, direction, None,
                                                 f"{type(item).__name__}: {item}"))
                else:
                    self.frames.append(LinkFrame(at, direction, bytes(item), None))
            del self.frames[:-self.limit]
            listeners = list(self._listeners)
        for wake in listeners:
            wake()

    async def wait(self, predicate: Callable[[LinkFrame], bool], *, timeout: float,
                   since: int = 0) -> LinkFrame:
        """The first frame (index ≥ ``since``) matching ``predicate``; AssertionError after
        ``timeout`` s. Woken by ``feed`` (from any thread), never by polling."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(changed.set)

        with self._lock:
            self._listeners.append(wake)
        scanned = since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    with self._lock:
                        fresh = self.frames[scanned:]
                        scanned = len(self.frames)
                    for frame in fresh:
                        if predicate(frame):
                            return frame
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"link: no matching frame within {timeout} s "
                                 f"({len(self.frames) - since} frames seen)") from None
        finally:
            with self._lock:
                self._listeners.remove(wake)

    def render(self) -> str:
        """Every recorded frame, oldest first, as text (see `LinkFrame.describe`)."""
        with self._lock:
            frames = list(self.frames)
        return "\n".join(frame.describe() for frame in frames) + "\n"


def _plain(value: Any) -> Any:
    """A msgpack body with bytes shown as hex, for printing."""
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
