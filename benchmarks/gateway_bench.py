"""Gateway benchmark: end-to-end rate against raw aiomqtt, latency, footprint under load.

Run with ``.venv/bin/python benchmarks/gateway_bench.py`` (``--quick`` for a short run).
Everything runs against a real mosquitto on a free port; the gateway is a real process
(``python -m streetsense.tools.gateway run``) reading real PTYs. Printed, measured in one run:

a. throughput: signed DATA frames written to a PTY as fast as it takes them -> journal ->
   MQTT (QoS 1, PUBACK), frames/s, against raw aiomqtt QoS 1 publishing the same JSON
   payloads to the same broker with the same window in flight (the MQTT client is the
   gateway's ceiling, see DESIGN.md). Both are timed at the last PUBACK: the gateway's
   from its ``/metrics`` counter of acknowledged messages. Ratio target >= 0.5.
b. latency from the last byte of a frame written to the PTY to the message at a
   subscriber, p50/p99 at 200 frames/s. Target p99 < 50 ms.
c. RSS and CPU of the gateway process serving 200 nodes x 1 frame / 10 s (a load
   generator on 10 PTYs, ACKs read and dropped). Targets < 80 MB and < 2 % of a core.
d. a flood of strangers: one port carries signed frames of ever new unknown node ids at the
   line rate of 115,200 baud (11,520 bytes/s), while a registered node on another port
   sends stop-and-wait as fast as it is ACKed. Its rate during the flood against its rate
   without: phases interleaved in the same process, the median of each flood phase over the
   calm one before it. Target ratio >= 0.95; the gateway's CPU and log lines are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from streetsense.gateway import payloads
from streetsense.hil.broker import Mosquitto, free_port
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.pty import PtyPair
from streetsense.protocol import Deframer, Frame, ProtocolError
from streetsense.protocol.messages import ACK, DATA

WINDOW = 50
SETTLE_S = 0.3
READINGS = [[1, -1, 182, 170, 195, 12], [2, -1, 312, 250, 400, 12], [3, -1, 455, 420, 490, 12],
            [4, 0, 415, 400, 431, 12], [5, -2, 2875, 2850, 2901, 12],
            [6, -1, 712, 700, 725, 12], [7, -1, 10081, 10079, 10083, 12]]


def key(node_id: int) -> bytes:
    return bytes((node_id * 13 + i) & 0xFF for i in range(32))


def data_frame(node_id: int, seq: int, ts: int) -> bytes:
    body = {1: ts, 2: 0, 3: 60, 4: READINGS}
    wire: bytes = Frame(DATA, node_id, 1, seq, body, 0x01).encode(key(node_id))
    return wire


class Pty(PtyPair):
    """A PTY pair: the gateway opens ``path``; we write frames on the master."""

    def __init__(self, *, discard: bool = True) -> None:
        super().__init__()
        if discard:  # else the caller reads the gateway's ACKs
            threading.Thread(target=self._discard, daemon=True).start()

    def _discard(self) -> None:
        # The gateway's ACKs must be read, or its writes would back up.
        with contextlib.suppress(OSError):
            while os.read(self.master, 65536):
                pass


class Subscriber:
    """Records the arrival time of each (node_id, seq) on the data topics."""

    def __init__(self, broker: Mosquitto, topic_filter: str = "bench/+/+/data") -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.arrivals: dict[tuple[int, int], float] = {}
        self.changed = asyncio.Condition()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe(self.topic_filter, qos=1)
            self.ready.set()
            async for message in client.messages:
                now = time.perf_counter()
                assert isinstance(message.payload, bytes)
                body = json.loads(message.payload)
                async with self.changed:
                    self.arrivals.setdefault((body["node_id"], body["seq"]), now)
                    self.changed.notify_all()

    async def wait_count(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.arrivals) >= count)


def start_gateway(workdir: Path, broker: Mosquitto, ptys: list[Pty], node_ids: range,
                  http: str | bool = False) -> GatewayProcess:
    gateway = GatewayProcess(
        workdir=workdir, mqtt_url=broker.url, prefix="bench", site="bench",
        serial=[SerialEntry(path=p.path, name=f"pty{i}") for i, p in enumerate(ptys)],
        nodes=[NodeEntry(id=n, name=f"N{n:04d}", kind="air-quality", key=key(n))
               for n in node_ids],
        settings={"mqtt": {"keepalive_s": 30, "inflight": WINDOW},
                  "health": {"interval_s": 60.0}, "http": {"listen": http},
                  "derived": {"aqi": False, "traffic": False}})
    gateway.start()
    return gateway


@contextlib.asynccontextmanager
async def gateway_on(workdir: Path, broker: Mosquitto, ptys: list[Pty], node_ids: range,
                     http: str | bool = False) -> AsyncIterator[GatewayProcess]:
    """A gateway process on ``ptys``; stopped (and the PTYs closed) whatever happens, so
    no gateway outlives the benchmark holding /dev/pts numbers a later PTY would reuse."""
    try:
        gateway = await asyncio.to_thread(start_gateway, workdir, broker, ptys, node_ids, http)
        try:
            await asyncio.sleep(SETTLE_S)  # READY comes as the ports are being opened
            yield gateway
        finally:
            gateway.close()
    finally:
        for pty in ptys:
            pty.close()


def _published(metrics_url: str) -> int:
    """The gateway's count of messages the broker acknowledged, from ``/metrics``."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("streetsense_gateway_messages_published_total "):
                return int(float(line.split()[1]))
    return 0


async def throughput(tmp: Path, broker: Mosquitto, frames: int) -> tuple[float, float]:
    """(gateway frames/s end to end, raw aiomqtt QoS 1 msgs/s) for the same payloads."""
    pty = Pty()
    nodes = range(1, 21)
    listen = f"127.0.0.1:{free_port()}"
    ts = int(time.time())
    wire = b"".join(data_frame(nodes[i % 20], i // 20, ts) for i in range(frames))
    async with gateway_on(tmp / "tp", broker, [pty], nodes, listen):
        start = time.perf_counter()
        await asyncio.to_thread(pty.write, wire)
        # Polling the counter (every 20 ms) is the measurement's clock, not a sync wait.
        while await asyncio.to_thread(_published, f"http://{listen}/metrics") < frames:
            await asyncio.sleep(0.02)
        gateway_rate = frames / (time.perf_counter() - start)
    # The same JSON payloads, published by raw aiomqtt with the same window in flight.
    origin = payloads.Origin("N0001", 1, "air-quality", "bench", "gw-hil")
    bodies = [payloads.encode(payloads.data_payload(
        origin, 1, i, {1: ts, 2: 0, 3: 60, 4: READINGS}, payloads.Stamp(float(ts), "utc"),
        time.time(), delayed=False)) for i in range(frames)]
    async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=WINDOW) as client:
        client.pending_calls_threshold = WINDOW + 20
        window = asyncio.Semaphore(WINDOW)

        async def one(body: bytes) -> None:
            try:
                await client.publish("rawbench/data", body, qos=1)
            finally:
                window.release()

        start = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for body in bodies:
                await window.acquire()
                group.create_task(one(body))
        raw_rate = frames / (time.perf_counter() - start)
    return gateway_rate, raw_rate


async def latency(tmp: Path, broker: Mosquitto, seconds: float) -> list[float]:
    """Latencies (ms) at 200 frames/s from 20 nodes, last PTY byte -> subscriber."""
    pty = Pty()
    nodes = range(1, 21)
    subscriber = Subscriber(broker)
    task = asyncio.create_task(subscriber.run())
    try:
        await subscriber.ready.wait()
        async with gateway_on(tmp / "lat", broker, [pty], nodes):
            ts = int(time.time())
            sent: dict[tuple[int, int], float] = {}
            count = int(seconds * 200)
            begin = time.perf_counter()
            for i in range(count):
                # Pacing the load generator at 200 frames/s (the load, not a sync wait).
                delay = begin + i / 200 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                node, seq = nodes[i % 20], i // 20
                pty.write(data_frame(node, seq, ts))
                sent[(node, seq)] = time.perf_counter()
            await subscriber.wait_count(count, timeout=60)
    finally:
        task.cancel()
    return [(subscriber.arrivals[k] - t) * 1000 for k, t in sent.items()]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def footprint(tmp: Path, broker: Mosquitto, seconds: float) -> tuple[float, float]:
    """(RSS MB, CPU % of one core) of the gateway with 200 nodes x 1 frame / 10 s."""
    ptys = [Pty() for _ in range(10)]
    nodes = range(1, 201)
    async with gateway_on(tmp / "fp", broker, ptys, nodes) as gateway:
        assert gateway.pid is not None
        pid = gateway.pid
        ts = int(time.time())
        cpu0, t0 = _cpu_s(pid), time.perf_counter()
        rss = 0.0
        i = 0
        while time.perf_counter() - t0 < seconds:
            # 200 nodes, each every 10 s: one frame every 50 ms, spread over the 10 ports.
            node = nodes[i % 200]
            ptys[node % 10].write(data_frame(node, i // 200, ts))
            i += 1
            await asyncio.sleep(max(0.0, t0 + i * 0.05 - time.perf_counter()))
            rss = max(rss, _rss_mb(pid))
        cpu = (_cpu_s(pid) - cpu0) / (time.perf_counter() - t0) * 100
    return rss, cpu


LINE_RATE_BYTES_S = 115200 / 10  # 8N1: ten bits a byte


class StopAndWait:
    """A registered node on ``pty``: each frame is written once it has the previous ACK."""

    def __init__(self, pty: Pty, node_id: int) -> None:
        self.pty, self.node_id, self.seq = pty, node_id, 0
        self.acked = 0
        self._deframer = Deframer()
        self._acked = asyncio.Event()

    def _readable(self) -> None:
        with contextlib.suppress(OSError):
            for item in self._deframer.feed(os.read(self.pty.master, 65536)):
                if not isinstance(item, ProtocolError) and bytes(item)[1] == ACK:
                    self._acked.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pty.master, self._readable)
        try:
            ts = int(time.time())
            while not stop.is_set():
                self._acked.clear()
                wire = data_frame(self.node_id, self.seq, ts)
                while True:  # retransmitted until ACKed, as a node does
                    self.pty.write(wire)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._acked.wait(), 1.0)
                        break
                self.seq += 1
                self.acked += 1
        finally:
            loop.remove_reader(self.pty.master)


def stranger_frames(count: int) -> list[bytes]:
    """The smallest signed DATA frames (the most a line carries), each of a new unknown id."""
    ts = int(time.time())
    return [Frame(DATA, 1_000_000 + i, 1, 0, {1: ts, 2: 0, 4: []}, 0x01).encode(key(0))
            for i in range(count)]


async def flood(pty: Pty, frames: list[bytes], stop: asyncio.Event) -> int:
    """``frames`` written at line rate, a 20 ms tick's worth at a time; returns how many."""
    sent, written, begin = 0, 0, time.perf_counter()
    while not stop.is_set() and sent < len(frames):
        due = (time.perf_counter() - begin + 0.02) * LINE_RATE_BYTES_S
        batch = []
        while sent < len(frames) and written < due:
            batch.append(frames[sent])
            written += len(frames[sent])
            sent += 1
        pty.write(b"".join(batch))
        await asyncio.sleep(0.02)  # pacing the load generator (the load, not a sync wait)
    return sent


async def stranger_flood(tmp: Path, broker: Mosquitto, phase_s: float, rounds: int
                         ) -> tuple[float, dict[bool, float], dict[bool, float], int, int]:
    """Over interleaved phases without and with the flood: the median ratio of the legit
    node's rates (flood / calm before it), its mean frames/s and the gateway's CPU % of a
    core by phase kind; log lines and frames of the flood."""
    legit_pty, flood_pty = Pty(discard=False), Pty()
    strangers = stranger_frames(int(LINE_RATE_BYTES_S * phase_s * rounds / 30) + 100)
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    log_lines = flooded = 0
    async with gateway_on(tmp / "flood", broker, [legit_pty, flood_pty], range(1, 2)) as gw:
        assert gw.pid is not None
        node = StopAndWait(legit_pty, 1)
        for _ in range(rounds):
            for flooding in (False, True):
                stop = asyncio.Event()
                tasks = [asyncio.create_task(node.run(stop))]
                if flooding:
                    tasks.append(asyncio.create_task(
                        flood(flood_pty, strangers[flooded:], stop)))
                lines0, cpu0 = gw.log().count("\n"), _cpu_s(gw.pid)
                acked0, t0 = node.acked, time.perf_counter()
                await asyncio.sleep(phase_s)  # the phase's length (the measurement window)
                stop.set()
                elapsed = time.perf_counter() - t0
                rates[flooding].append((node.acked - acked0) / elapsed)
                cpu[flooding].append((_cpu_s(gw.pid) - cpu0) / elapsed * 100)
                results = await asyncio.gather(*tasks)
                if flooding:
                    log_lines += gw.log().count("\n") - lines0
                    flooded += results[1]
    # Each flood phase against the calm phase just before it: a shared machine's load drifts.
    ratio = statistics.median(f / c for c, f in zip(rates[False], rates[True], strict=True))
    return (ratio, {k: statistics.mean(v) for k, v in rates.items()},
            {k: statistics.mean(v) for k, v in cpu.items()}, log_lines, flooded)


async def main(quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ssgw-bench-") as tmp, Mosquitto() as broker:
        work = Path(tmp)
        frames = 1000 if quick else 10000
        gateway_rate, raw_rate = await throughput(work, broker, frames)
        ratio = gateway_rate / raw_rate
        print(f"a. end to end PTY->journal->PUBACK: {gateway_rate:,.0f} frames/s; raw aiomqtt "
              f"QoS1: {raw_rate:,.0f} msg/s; ratio {ratio:.2f} (target >= 0.5) "
              f"{'OK' if ratio >= 0.5 else 'BELOW TARGET'}")
        lat = sorted(await latency(work, broker, 2.0 if quick else 15.0))
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"b. latency at 200 frames/s ({len(lat)} frames): p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms (target p99 < 50 ms) {'OK' if p99 < 50 else 'ABOVE TARGET'}")
        rss, cpu = await footprint(work, broker, 4.0 if quick else 60.0)
        print(f"c. 200 nodes x 1 frame/10 s: RSS {rss:.1f} MB (target < 80), CPU {cpu:.2f} % "
              f"of a core (target < 2) {'OK' if rss < 80 and cpu < 2 else 'ABOVE TARGET'}")
        ratio, rates, cpu, lines, strangers = await stranger_flood(
            work, broker, 1.0 if quick else 2.5, 1 if quick else 8)
        print(f"d. unknown-id flood at 115,200 baud on one port ({strangers} frames): a node "
              f"on another port {rates[True]:,.0f} frames/s, {rates[False]:,.0f} without; "
              f"ratio {ratio:.2f} (target >= 0.95) {'OK' if ratio >= 0.95 else 'BELOW TARGET'}"
              f"; gateway CPU {cpu[True]:.0f} % of a core ({cpu[False]:.0f} % without), "
              f"{lines} log lines")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    asyncio.run(main(parser.parse_args().quick))
    sys.exit(0)
