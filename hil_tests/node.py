"""An emulated node: the real firmware under the MicroPython unix port, on the emulated board.

`EmulatedNode` stages the firmware and the protocol package into a flash folder (the process's
cwd, as the ESP32's filesystem root), writes a board file (link UART 2 = a PTY behind a
`LinkRelay`; the sensors of an optional environment) and runs ``import boot; import main``.
`.port` is the PTY path a gateway opens; it stays the same across power cycles. When the
firmware resets (``machine.reset()``, exit status 86) or the watchdog bites (87), the process
is started again with ``STREETSENSE_RESET_CAUSE`` set, as the chip would come back up.
`power_cycle()` kills it (SIGKILL) and starts it again on the same flash: the boot counter
goes up. Everything is synchronous (threads inside), so async tests can use it too.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from streetsense.node_sources import firmware_dir, package_dir

from .lifecycle import Managed, SelectThread
from .micropython import MISSING, find_micropython, popen, stage_protocol
from .pty import PtyPair

__all__ = ["Console", "EmulatedNode", "LinkRelay", "NodeError", "provisioned_config"]

FIRMWARE = firmware_dir()
BOARD_SHIM = package_dir("streetsense.hil") / "board"  # machine.py, bluetooth.py
LINK_UART = "2"
# machine.py: exit statuses of reset() and of a watchdog bite; ESP32 reset_cause() values.
RESET_EXIT_STATUS = 86
WDT_EXIT_STATUS = 87
PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5
# The unix port's heap: an ESP32-WROOM has ~110 KB free for MicroPython; pointers are twice
# as big here, so this is about as tight.
HEAP = "256K"


class NodeError(RuntimeError):
    """The emulated node did not do what was awaited; the message holds the console tail."""


class Environment(Protocol):
    """What EmulatedNode needs of hil_tests/environment.py's Environment."""

    def board_entries(self) -> dict[str, Any]: ...


def provisioned_config(node_id: int, key: bytes, kind: str) -> dict[str, Any]:
    """The config.json entries of a provisioned node."""
    return {"node_id": node_id, "key": key.hex(), "kind": kind}


class Console:
    """Lines the node printed (stdout and stderr, all boots), plus ``# rig: ...`` lines."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self._echo = echo
        self._changed = threading.Condition()

    def append(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()
        if self._echo is not None:
            self._echo(line)

    def mark(self) -> int:
        """Index of the next line: pass it as `since` to wait only for what comes after."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0, *, since: int = 0) -> re.Match[str]:
        """The first line from index `since` on that matches `pattern` (re.search)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = since
        with self._changed:
            while True:
                for line in self.lines[checked:]:
                    match = regex.search(line)
                    if match:
                        return match
                checked = max(checked, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-20:])
                    raise NodeError(f"no console line matching {pattern!r} in {timeout} s:\n{tail}")
                self._changed.wait(left)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.lines))

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> str:
        return self.lines[index]


class LinkRelay:
    """Two PTY pairs joined by a thread: the node's UART on one, `port` for the gateway on the
    other. Faults (seeded): `drop` whole frames (split at 0x00), flip bits at rate `ber`,
    `delay_ms` each way; `baud`: each direction carries 10 bits a byte at that rate (8N1, as
    the link UART), so bytes arrive when a real line would have delivered them (0: at once);
    `unplug()` discards everything until `replug()`. The relay keeps both
    slave ends open, so neither master sees a hang-up when a peer closes its end. `tap`, when
    set, gets ("up" | "down", bytes) for every chunk read, before any fault applies."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._node_pty, self._gw_pty = PtyPair(nonblocking=True), PtyPair(nonblocking=True)
        self._node_master, self._node_slave = self._node_pty.master, self._node_pty.slave
        self._gw_master = self._gw_pty.master
        self.node_path = self._node_pty.path
        self.port = self._gw_pty.path
        self.drop = 0.0
        self.ber = 0.0
        self.delay_ms = 0
        self.baud = 0
        self._line_free = {self._node_master: 0.0, self._gw_master: 0.0}  # per destination
        self.plugged = True
        self.tap: Callable[[str, bytes], None] | None = None
        self.counters = {
            "up_bytes": 0, "down_bytes": 0, "dropped_frames": 0, "flipped_bits": 0,
            "unplugged_bytes": 0, "overflow_bytes": 0,
        }  # fmt: skip
        self._partial = {self._node_master: b"", self._gw_master: b""}
        self._pending: list[tuple[float, int, int, bytes]] = []  # (due, order, fd, data)
        self._order = 0
        self._lock = threading.Lock()
        self._thread = SelectThread(self._run, "link-relay")
        self._thread.start()

    def set_faults(self, *, drop: float = 0.0, ber: float = 0.0, delay_ms: int = 0) -> None:
        with self._lock:
            self.drop, self.ber, self.delay_ms = drop, ber, delay_ms

    def unplug(self) -> None:
        with self._lock:
            self.plugged = False

    def replug(self) -> None:
        with self._lock:
            self.plugged = True

    def flush_node_side(self) -> None:
        """Forget bytes the node has not read (a chip reset empties its UART FIFO)."""
        termios.tcflush(self._node_slave, termios.TCIFLUSH)

    def _run(self) -> None:
        peers = {self._node_master: self._gw_master, self._gw_master: self._node_master}
        while True:
            with self._lock:
                due = self._pending[0][0] if self._pending else None
            timeout = None if due is None else max(0.0, due - time.monotonic())
            readable = self._thread.wait([*peers], timeout)
            if readable is None:
                return
            for fd in readable:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                with self._lock:
                    self._forward(fd, peers[fd], data)
            with self._lock:
                now = time.monotonic()
                while self._pending and self._pending[0][0] <= now:
                    _, _, to, chunk = heapq.heappop(self._pending)
                    self._write(to, chunk)

    def _forward(self, src: int, dest: int, data: bytes) -> None:
        up = src == self._node_master
        self.counters["up_bytes" if up else "down_bytes"] += len(data)
        if self.tap is not None:
            self.tap("up" if up else "down", data)
        if not self.plugged:
            self.counters["unplugged_bytes"] += len(data)
            return
        if self.drop:
            # Whole frames: bytes up to and including each 0x00; the rest waits for its end.
            data = self._partial[src] + data
            cut = data.rfind(b"\x00") + 1
            self._partial[src] = data[cut:]
            frames = [f + b"\x00" for f in data[: cut - 1].split(b"\x00")] if cut else []
            kept = [f for f in frames if self._rng.random() >= self.drop]
            self.counters["dropped_frames"] += len(frames) - len(kept)
            data = b"".join(kept)
        if self.ber and data:
            data = self._flip(data)
        if not data:
            return
        if self.baud:  # the line is busy until the bytes before these are through
            start = max(time.monotonic() + self.delay_ms / 1000, self._line_free[dest])
            self._line_free[dest] = due = start + len(data) * 10 / self.baud
            self._order += 1
            heapq.heappush(self._pending, (due, self._order, dest, data))
        elif self.delay_ms:
            self._order += 1
            due = time.monotonic() + self.delay_ms / 1000
            heapq.heappush(self._pending, (due, self._order, dest, data))
        else:
            self._write(dest, data)

    def _flip(self, data: bytes) -> bytes:
        out = bytearray(data)
        p_byte = 1 - (1 - self.ber) ** 8
        for i in range(len(out)):
            if self._rng.random() < p_byte:
                out[i] ^= 1 << self._rng.randrange(8)
                self.counters["flipped_bits"] += 1
        return bytes(out)

    def _write(self, fd: int, data: bytes) -> None:
        try:
            written = os.write(fd, data)
        except (BlockingIOError, OSError):
            written = 0
        self.counters["overflow_bytes"] += len(data) - written

    def close(self) -> None:
        self._thread.close()
        self._node_pty.close()
        self._gw_pty.close()


class EmulatedNode(Managed):
    """One node on the emulated board; see the module docstring.

    `node_id` and `key` given: a provisioned config.json is written before the first start
    (a test shortcut for the provisioning exchange); neither: the node starts in factory state.
    `extra_config` entries go into config.json too. `environment` (hil_tests/environment.py)
    supplies the sensors; None means a board without sensors. `heap`: the MicroPython heap
    size (``-X heapsize``). `echo` gets each console line as it comes.
    """

    def __init__(
        self,
        kind: str,
        *,
        flash_dir: Path | str | None = None,
        environment: Environment | None = None,
        node_id: int | None = None,
        key: bytes | None = None,
        seed: int = 0,
        micropython: str | None = None,
        extra_config: dict[str, Any] | None = None,
        echo: Callable[[str], None] | None = None,
        heap: str = HEAP,
    ) -> None:
        self.kind = kind
        self.heap = heap
        self.environment = environment
        self.micropython = micropython or find_micropython()
        if self.micropython is None:
            raise NodeError(MISSING)
        self._rig_dir = Path(tempfile.mkdtemp(prefix="ssnode-rig-"))
        self.flash_dir = Path(flash_dir) if flash_dir else self._rig_dir / "flash"
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.link = LinkRelay(seed)
        self.console = Console(echo)
        self.exit_status: int | None = None  # set when the firmware exited for good
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._board_file = self._rig_dir / "board.json"
        try:
            self._stage()
            self._write_config(node_id, key, extra_config or {})
            self._board_file.write_text(json.dumps(self._board()))
        except BaseException:
            self.close()
            raise

    @property
    def port(self) -> str:
        return self.link.port

    @property
    def boot_count(self) -> int:
        try:
            return int((self.flash_dir / "bootcount").read_text())
        except FileNotFoundError:
            return 0

    @property
    def config(self) -> dict[str, Any]:
        """The node's config.json as it is on flash now."""
        data: dict[str, Any] = json.loads((self.flash_dir / "config.json").read_text())
        return data

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _stage(self) -> None:
        """Copy firmware and protocol package onto the flash, as flashing a board would."""
        ignore = shutil.ignore_patterns("__pycache__")
        for name in ("boot.py", "main.py", "ssboot.py"):
            shutil.copy(FIRMWARE / name, self.flash_dir / name)
        shutil.copytree(FIRMWARE / "ssnode", self.flash_dir / "ssnode", ignore=ignore,
                        dirs_exist_ok=True)  # fmt: skip
        staged = stage_protocol(self._rig_dir / "lib")
        shutil.copytree(staged / "streetsense", self.flash_dir / "streetsense", ignore=ignore,
                        dirs_exist_ok=True)  # fmt: skip

    def _write_config(self, node_id: int | None, key: bytes | None, extra: dict[str, Any]) -> None:
        path = self.flash_dir / "config.json"
        config: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        if not config:
            config["kind"] = self.kind
        if (node_id is None) != (key is None):
            raise ValueError("give both node_id and key (provisioned) or neither (factory)")
        if node_id is not None and key is not None:
            config.update(provisioned_config(node_id, key, self.kind))
        config.update(extra)
        path.write_text(json.dumps(config))

    def _board(self) -> dict[str, Any]:
        board: dict[str, Any] = {"uart": {LINK_UART: self.link.node_path}, "i2c": {}}
        if self.environment is not None:
            for name, entry in self.environment.board_entries().items():
                if isinstance(entry, dict):
                    board.setdefault(name, {}).update(entry)
                else:
                    board[name] = entry
        return board

    # -- process ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            raise NodeError("the node is already running")
        self._stopping = False
        self.exit_status = None
        self._thread = threading.Thread(target=self._run, name="emulated-node", daemon=True)
        self._spawn(PWRON_RESET)
        self._thread.start()

    def _spawn(self, reset_cause: int) -> None:
        self.link.flush_node_side()
        assert self.micropython is not None
        self._proc = popen(
            "-c", "import boot\nimport main", heap=self.heap, exe=self.micropython,
            path=[self.flash_dir, BOARD_SHIM], board=self._board_file,
            env={"STREETSENSE_RESET_CAUSE": str(reset_cause)},
            cwd=self.flash_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal is for the rig, not the board
        )

    def _run(self) -> None:
        """Console reader and reset loop: restart after reset() or a watchdog bite."""
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            for raw in proc.stdout:
                self.console.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
            status = proc.wait()
            if self._stopping:
                return
            if status == RESET_EXIT_STATUS:
                cause = SOFT_RESET
            elif status == WDT_EXIT_STATUS:
                cause = WDT_RESET
            else:
                self.exit_status = status
                self.console.append(f"# rig: firmware exited with status {status}")
                return
            self.console.append(f"# rig: exit {status}, restarting (reset cause {cause})")
            self._spawn(cause)

    def stop(self) -> None:
        """Power off: SIGKILL, no chance to save anything."""
        self._stopping = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._proc is not None:
            self._proc.wait()
            self._proc = None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the firmware exits for good (a reset does not count); its exit status,
        or None if it still runs after `timeout` seconds."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.exit_status

    def power_cycle(self) -> None:
        self.stop()
        self.console.append("# rig: power cycle")
        self.start()

    def wait_for(self, pattern: str, timeout: float = 10.0, *, since: int = 0) -> re.Match[str]:
        return self.console.wait_for(pattern, timeout, since=since)

    def close(self) -> None:
        """Stop the node and the relay; remove the rig folder (and the flash, if it made it)."""
        self.stop()
        self.link.close()
        shutil.rmtree(self._rig_dir)
