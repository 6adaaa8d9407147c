"""A real MQTT broker for tests, and a TCP proxy in front of it that can fail on request.

`ServerProcess` is a server a test runs on a 127.0.0.1 port and may stop, kill and restart
on that port, so a client's reconnect loop sees the same server come back (the NATS cluster
members and PostgreSQL in their own modules are ones too). `Mosquitto` runs the mosquitto
binary with a generated config on a free port (persistence off). `TcpProxy` forwards TCP to
a target and can black-hole traffic (connections stay open, bytes are held until it is
switched off, as TCP would retransmit them) or reset every open connection. Both are
synchronous objects (threads and processes inside), usable from sync and async tests alike.
CPython only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from streetsense.loopback import LOCALHOST, free_port

from .lifecycle import Managed

__all__ = [
    "BrokerError",
    "ManagedServer",
    "Mosquitto",
    "ServerProcess",
    "TcpProxy",
    "accepts",
    "cpu_seconds",
    "find_executable",
    "find_mosquitto",
    "free_port",
]

_T = TypeVar("_T")


class BrokerError(RuntimeError):
    """A server could not be started, or exited on its own; the message holds its log."""


def find_executable(name: str, *, env: str, fallback: str | None = None) -> str | None:
    """``$<env>``, else ``name`` on PATH, else ``fallback`` if executable; None if none."""
    override = os.environ.get(env)
    if override:
        return override
    found = shutil.which(name)
    if found:
        return found
    return fallback if fallback is not None and os.access(fallback, os.X_OK) else None


def find_mosquitto() -> str | None:
    """``$MOSQUITTO``, else ``mosquitto`` on PATH, else ``/usr/sbin/mosquitto``; None if none."""
    return find_executable("mosquitto", env="MOSQUITTO", fallback="/usr/sbin/mosquitto")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, seconds) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accepts(host: str, port: int) -> bool:
    """Whether a TCP connect to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ManagedServer(Managed):
    """A server (or a group of them) for one test: ``start()``, then ``close()`` stops it and
    removes its temporary ``workdir``; usable as ``with``."""

    workdir: Path

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop it and remove its temporary directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class ServerProcess(ManagedServer):
    """A server process for tests, on ``127.0.0.1:port``, in ``workdir``; its output goes to
    ``log_path``.

    ``start()`` returns once ``ready()`` says so (default: the port accepts TCP); ``stop()``
    sends ``stop_signal`` (SIGKILL after a timeout), ``kill()`` SIGKILL, as a crash or power
    loss would; ``restart()`` keeps the port. ``user`` (uid, gid) runs it unprivileged.
    """

    host = LOCALHOST
    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, command: Sequence[str], port: int, workdir: Path, log_path: Path, *,
                 start_timeout_s: float = 10.0, user: tuple[int, int] | None = None) -> None:
        self.command = list(command)
        self.port = port
        self.workdir = workdir
        self.start_timeout_s = start_timeout_s
        self.user = user
        self._log = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def ready(self) -> bool:
        """Whether the server serves now (called while ``start()`` waits)."""
        return accepts(self.host, self.port)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._process.pid if self.running and self._process else None

    def log(self) -> str:
        """Everything the server has logged since this object was made (all its runs)."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def start(self) -> None:
        """Start the server (no-op if it runs) and wait until it is ready."""
        if self.running:
            return
        self.start_process()
        self.wait_ready()

    def start_process(self) -> None:
        """Start the process without waiting for it to serve."""
        uid, gid = self.user if self.user is not None else (None, None)
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                user=uid, group=gid, extra_groups=[] if gid is not None else None)

    def wait_ready(self) -> None:
        """Until ``ready()``; `BrokerError` with the log if the process exits or times out."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ready():
            try:
                # Waiting on the process doubles as the poll interval and catches an early exit.
                code = self._process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.kill()
                    raise BrokerError(
                        f"{self.name} did not serve on port {self.port} within "
                        f"{self.start_timeout_s} s:\n{self.log()}"
                    ) from None
                continue
            raise BrokerError(f"{self.name} exited with {code}:\n{self.log()}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop it gracefully (SIGKILL after ``timeout_s``); no-op if not running."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill it with SIGKILL; no-op if not running."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def restart(self) -> None:
        """Stop it (if running) and start it again on the same port."""
        self.stop()
        self.start()


class Mosquitto(ServerProcess):
    """A mosquitto process on ``127.0.0.1:port`` (a free port when None), anonymous, no
    persistence. ``extra_config`` lines are appended to the generated config (TLS, ACLs...).

    Started, stopped, killed and restarted as a `ServerProcess`. ``close()`` (or leaving the
    ``with`` block) stops it and removes its temporary directory.
    """

    name = "mosquitto"

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_config: Iterable[str] = (),
        executable: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        exe = executable or find_mosquitto()
        if exe is None:
            raise BrokerError(
                "mosquitto is missing: install it with 'sudo apt-get install mosquitto'"
            )
        self.executable = exe
        self.workdir = Path(tempfile.mkdtemp(prefix="streetsense-mosquitto-"))
        config = self.workdir / "mosquitto.conf"
        port = port if port is not None else free_port()
        super().__init__([exe, "-c", str(config)], port, self.workdir,
                         self.workdir / "mosquitto.log", start_timeout_s=start_timeout_s)
        lines = [
            f"listener {self.port} {LOCALHOST}",
            "allow_anonymous true",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            *extra_config,
        ]
        config.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://{self.host}:{self.port}"


class TcpProxy(Managed):
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``, one upstream connection
    per client; if the target refuses, the client's connection is reset.

    ``blackhole(True)``: connections (new ones too) stay open but no byte moves in either
    direction; what is sent is held and delivered, in order, after ``blackhole(False)``.
    ``reset_all()``: every open connection is aborted with a TCP RST on both sides.
    Runs its own event loop in a thread; ``close()`` (or the ``with`` block) ends it.
    """

    host = LOCALHOST

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.accepted = 0  # connections accepted since start
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._changed: asyncio.Condition | None = None  # notified when a connection opens
        self._server: asyncio.Server | None = None
        # each open connection: its two writers (client side, target side) and its task
        self._links: dict[asyncio.Task[Any], tuple[asyncio.StreamWriter, ...]] = {}
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._thread.start()
        self.port: int = self._call(self._listen(port))

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` (the proxy is used in front of brokers)."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Client connections open through the proxy now."""
        return self._call(self._count())

    def wait_for_connections(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until at least ``count`` connections are open through the proxy.

        A client's connect completes in the kernel before the proxy has its upstream
        connection; wait for this before ``reset_all()`` must catch a new connection.
        """
        self._call(self._wait_for(count, timeout_s))

    def blackhole(self, on: bool) -> None:
        """Hold all traffic (True) or let it, and everything held, flow again (False)."""
        self._call(self._set_flowing(not on))

    def reset_all(self) -> None:
        """Abort every open connection (RST to the client and to the target)."""
        self._call(self._reset_all())

    def close(self) -> None:
        """Stop listening, reset open connections and end the proxy's thread."""
        if self._loop.is_closed():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the proxy's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self, port: int) -> int:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._changed = asyncio.Condition()
        self._server = await asyncio.start_server(self._serve, self.host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def _count(self) -> int:
        return len(self._links)

    async def _wait_for(self, count: int, timeout_s: float) -> None:
        assert self._changed is not None
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self._links) >= count)

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            target_r, target_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _abort(client_w)
            return
        task = asyncio.current_task()
        assert task is not None and self._changed is not None
        async with self._changed:
            self._links[task] = (client_w, target_w)
            self._changed.notify_all()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client_r, target_w))
                group.create_task(self._pump(target_r, client_w))
        except* (OSError, asyncio.IncompleteReadError):
            # One side failed (reset): the other side gets a reset too.
            _abort(client_w)
            _abort(target_w)
        except* asyncio.CancelledError:
            # Only _reset_all cancels this task, after aborting both sides. Ending normally
            # keeps asyncio's stream callback from logging the cancellation as an error.
            pass
        finally:
            del self._links[task]
            client_w.close()
            target_w.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy source to sink, holding each chunk (and the EOF) while black-holed."""
        assert self._flowing is not None
        while True:
            data = await source.read(65536)
            await self._flowing.wait()
            if not data:
                if sink.can_write_eof():
                    sink.write_eof()
                return
            sink.write(data)
            await sink.drain()

    async def _reset_all(self) -> None:
        tasks = list(self._links)
        for task, writers in list(self._links.items()):
            for writer in writers:
                _abort(writer)
            task.cancel()  # its pumps may be held by the black hole
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()
        if self._server is not None:
            await self._server.wait_closed()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a RST rather than a FIN (SO_LINGER 0, then abort)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
