"""The disk-full fault on any machine, root or not: the gateway process under a file-size limit
(``RLIMIT_FSIZE``, set on the running process with prlimit(2)). A write past the limit fails
with EFBIG (CPython ignores SIGXFSZ), which SQLite reports as an I/O error: the journal takes
the same path as a full disk, refusing frames (no ACK, logged once), and the gateway keeps
running; lifting the limit is space coming back."""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

from streetsense.hil.broker import Mosquitto, TcpProxy
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.keys import numbered_key
from streetsense.hil.observer import MqttObserver
from streetsense.hil.pty import PtyPort
from tests.support.fake_node import PtyNode
from tests.support.gateway_rig import topic

MARGIN = 64 * 1024  # what the files may still grow by: a few commits' WAL pages
RETRIES = 5  # retransmissions of the refused frame seen before the limit is lifted


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def test_faults_file_size_limit_refuses_keeps_running_and_recovers(
        tmp_path: Path, mosquitto: Mosquitto, mosquitto_proxy: TcpProxy) -> None:
    """Frames past the limit are refused, not ACKed; the node retransmits; the process stays
    up; with the limit lifted the frames are taken, and every ACKed frame is published once."""
    port = PtyPort(tmp_path / "tty0")
    node = PtyNode(port, 42)
    gateway = GatewayProcess(
        workdir=tmp_path / "gw", mqtt_url=mosquitto_proxy.url, site="test",
        serial=[SerialEntry(path=str(port.path), name="tty0")],
        nodes=[NodeEntry(id=42, name="HN-0042", kind="air-quality", key=numbered_key(42))])
    journal = tmp_path / "gw" / "data" / "journal.sqlite"
    acked: list[int] = []
    writes: dict[int, int] = {}
    progress = asyncio.Event()
    write = node.write

    def counting_write(data: bytes) -> None:
        writes[node.seq - 1] = writes.get(node.seq - 1, 0) + 1
        progress.set()
        write(data)

    node.write = counting_write  # type: ignore[method-assign]

    async def until(condition: object, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not condition():  # type: ignore[operator]
                progress.clear()
                await progress.wait()

    mosquitto_proxy.blackhole(True)  # nothing is delivered: the rows stay in the journal
    async with MqttObserver(mosquitto.url, topics=[topic("HN-0042", "data")]) as observer:
        await asyncio.to_thread(gateway.start)
        node.attach()

        frames = [1 << 30]  # how many to send: set once the journal takes frames again

        async def stream() -> None:
            now = int(time.time())
            while len(acked) < frames[0]:
                acked.append(await node.send(node.data(300, ts=now), timeout=120, retry_s=0.2))
                progress.set()

        sender = asyncio.create_task(stream())
        try:
            await until(lambda: len(acked) >= 5, timeout=30)
            pid = gateway.pid
            assert pid is not None
            limit = max(_size(journal), _size(Path(f"{journal}-wal")), _size(gateway.log_path))
            resource.prlimit(pid, resource.RLIMIT_FSIZE,
                             (limit + MARGIN, resource.RLIM_INFINITY))
            await until(lambda: writes.get(node.seq - 1, 0) > RETRIES, timeout=60)
            stalled = len(acked)
            assert gateway.running, gateway.log()[-3000:]
            resource.prlimit(pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            frames[0] = stalled + 3
            await asyncio.wait_for(sender, 30)
            mosquitto_proxy.blackhole(False)
            await observer.expect(topic("HN-0042", "data"),
                                  lambda m: m.json()["seq"] == frames[0] - 1, timeout=60)
        finally:
            sender.cancel()
            node.detach()
            gateway.close()
            port.close()
    log = gateway.log()
    assert log.count("journal full") == 1 and "disk I/O error" in log, log[-3000:]
    assert log.count("journal takes frames again") == 1, log[-3000:]
    published = [m.json()["seq"] for m in observer.messages(topic("HN-0042", "data"))]
    assert sorted(published) == acked == list(range(len(acked))), (len(published), len(acked))
