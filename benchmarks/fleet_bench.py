"""Fleet benchmark: 1,000 nodes, 10 gateways, a 3-node NATS cluster, the store, PostgreSQL.

Run with ``.venv/bin/python benchmarks/fleet_bench.py`` (``--quick`` for a short run).
Everything is real except the nodes: 1,000 light CPython nodes (`LightNode`: frames built with
``streetsense.protocol``, signed, stop-and-wait, on PTYs) send one DATA frame every 10 s each,
and 50 of them (traffic nodes) one vehicle EVENT a second on top. They are spread over 10
gateway processes (100 serial ports each), which publish (MQTT 3.1.1, QoS 1) into a 3-node
NATS JetStream cluster; ``streetsense store`` (a process, persistent session) writes the rows
into a private PostgreSQL. Printed, measured in one run:

a. node-to-database latency, p50/p99: from the moment a node made a frame to the store's
   commit of its row (``stored_at``); missing rows (frames made, no row) and duplicates
   (messages the store received again and its unique key absorbed). Targets: 0 missing,
   p99 < 2 s.
b. CPU per gateway and per broker member (% of one core over the run, and ms per frame),
   of the store and of PostgreSQL: the per-frame costs docs/scaling.md projects from.
c. the baseline: the same fleet into one mosquitto, in the same run; the ratios say what the
   cluster costs per frame against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streetsense.hil.broker import Mosquitto, ServerProcess, cpu_seconds
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.light_node import LightNode
from streetsense.hil.nats_cluster import NatsCluster
from streetsense.hil.postgres import Postgres

DATA_EVERY_S = 10.0
EVENT_EVERY_S = 1.0
P99_TARGET_MS = 2000.0
DRAIN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Fleet:
    nodes: int
    gateways: int
    traffic: int  # nodes that also send a vehicle event every EVENT_EVERY_S
    seconds: float


FULL = Fleet(nodes=1000, gateways=10, traffic=50, seconds=120.0)
QUICK = Fleet(nodes=100, gateways=2, traffic=5, seconds=20.0)


@dataclass
class Result:
    engine: str
    frames: int = 0
    missing: int = 0
    duplicates: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    gateway_cpu_s: list[float] = field(default_factory=list)
    broker_cpu_s: dict[str, float] = field(default_factory=dict)
    store_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0


def key(node_id: int) -> bytes:
    return bytes((node_id * 17 + i) & 0xFF for i in range(32))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (PostgreSQL's backends)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    total += cpu_seconds(int(entry.name))
    return total


def store_command(brokers: Sequence[str], db_url: str) -> list[str]:
    args = [sys.executable, "-m", "streetsense.tools.cli", "store", "--db", db_url,
            "--protocol", "3.1.1", "--client-id", "bench-store"]
    for url in brokers:
        args += ["--broker", url]
    return args


async def wait_log(path: Path, text: str, timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        while text not in path.read_text(errors="replace"):
            await asyncio.sleep(0.1)  # another process's log: nothing to wait on but the file


def database_rows(db_url: str) -> dict[tuple[int, int, int], float]:
    """(node_id, boot, seq) -> stored_at of every row the store wrote."""
    import psycopg

    with psycopg.connect(db_url) as connection:
        found: dict[tuple[int, int, int], float] = {}
        for table in ("data", "event", "status"):
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                for node_id, boot, seq, stored_at in connection.execute(
                        f"SELECT node_id, boot, seq, stored_at FROM {table}"):
                    found[(node_id, boot, seq)] = stored_at
    return found


def new_database(server: Postgres, name: str) -> str:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + f"/{name}"


async def drive(nodes: list[LightNode], traffic: set[int], seconds: float, seed: int) -> None:
    """Make the fleet's frames for ``seconds``: DATA every 10 s per node (random phase), a
    vehicle EVENT every second per traffic node."""
    rng = random.Random(seed)
    start = time.monotonic()
    due: list[tuple[float, int, str]] = []
    for index, node in enumerate(nodes):
        heapq.heappush(due, (start + rng.uniform(0, DATA_EVERY_S), index, "data"))
        if node.node_id in traffic:
            heapq.heappush(due, (start + rng.uniform(0, EVENT_EVERY_S), index, "event"))
    end = start + seconds
    while due[0][0] < end:
        when, index, kind = heapq.heappop(due)
        await asyncio.sleep(max(0.0, when - time.monotonic()))  # the nodes' own timers
        node = nodes[index]
        if kind == "data":
            node.data(rng.randint(100, 900))
            heapq.heappush(due, (when + DATA_EVERY_S, index, kind))
        else:
            node.event(lane=1 + index % 2)
            heapq.heappush(due, (when + EVENT_EVERY_S, index, kind))


async def run_fleet(engine: str, brokers: list[str], members: dict[str, ServerProcess],
                    database: Postgres, fleet: Fleet, workdir: Path) -> Result:
    """One fleet run into ``brokers``; ``members`` are the broker processes to measure."""
    result = Result(engine)
    db_url = new_database(database, f"bench_{engine.replace('-', '_')}")
    per_gateway = fleet.nodes // fleet.gateways
    nodes = [LightNode(node_id, key(node_id), retry_s=2.0)
             for node_id in range(1, fleet.nodes + 1)]
    step = max(1, fleet.nodes // max(1, fleet.traffic))
    traffic = {node.node_id for node in nodes[::step][:fleet.traffic]}
    gateways = []
    for g in range(fleet.gateways):
        mine = nodes[g * per_gateway:(g + 1) * per_gateway]
        gateways.append(GatewayProcess(
            workdir=workdir / f"{engine}-gw{g}", mqtt_url=brokers if len(brokers) > 1
            else brokers[0], site="hanoi", gateway_id=f"gw-{g:02d}",
            serial=[SerialEntry(n.path, f"p{n.node_id}") for n in mine],
            nodes=[NodeEntry(n.node_id, f"HN-{n.node_id:04d}",
                             "traffic" if n.node_id in traffic else "air-quality", n.key)
                   for n in mine],
            settings={"mqtt": {"protocol": "3.1.1", "keepalive_s": 10},
                      "health": {"interval_s": 10}}, ready_timeout_s=120.0))
    log = workdir / f"{engine}-store.log"
    with log.open("ab") as out:
        store = subprocess.Popen(store_command(brokers[::-1], db_url), stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        await wait_log(log, "subscribed to")
        await asyncio.gather(*(asyncio.to_thread(gateway.start) for gateway in gateways))
        for node in nodes:
            node.start()
            node.hello()
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            for node in nodes:
                await node.acked.wait()
        pids = {"gateway": [g.pid for g in gateways], "store": store.pid}
        cpu_before = ([cpu_seconds(p) for p in pids["gateway"] if p],
                      {name: cpu_seconds(m.pid or 0) for name, m in members.items()},
                      cpu_seconds(store.pid))
        postgres_before = tree_cpu_seconds(database.pid or 0)
        started = time.monotonic()
        await drive(nodes, traffic, fleet.seconds, seed=21)
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            for node in nodes:
                await node.acked.wait()
        expected = {(n.node_id, n.boot, seq): n.sent_at[seq] for n in nodes for seq in n.kinds}
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while not expected.keys() <= (found := database_rows(db_url)).keys():
                await asyncio.sleep(0.5)  # the database is another process's
        result.wall_s = time.monotonic() - started
        result.gateway_cpu_s = [cpu_seconds(p) - b for p, b in
                                zip([p for p in pids["gateway"] if p], cpu_before[0],
                                    strict=True)]
        result.broker_cpu_s = {name: cpu_seconds(m.pid or 0) - cpu_before[1][name]
                               for name, m in members.items()}
        result.store_cpu_s = cpu_seconds(store.pid) - cpu_before[2]
        result.postgres_cpu_s = tree_cpu_seconds(database.pid or 0) - postgres_before
        result.frames = len(expected)
        result.missing = len(expected.keys() - found.keys())
        result.latencies_ms = [(found[k] - sent) * 1000 for k, sent in expected.items()
                               if k in found]
    finally:
        store.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            store.wait(timeout=15)
        store.kill()
        await asyncio.gather(*(asyncio.to_thread(gateway.close) for gateway in gateways))
        for node in nodes:
            await node.close()
    stopped = re.findall(r"(\d+) duplicates", log.read_text(errors="replace"))
    result.duplicates = int(stopped[-1]) if stopped else -1
    return result


def percent(cpu_s: float, wall_s: float) -> float:
    return 100.0 * cpu_s / wall_s


def report(result: Result, fleet: Fleet) -> None:
    wall, frames = result.wall_s, max(1, result.frames)
    lat = sorted(result.latencies_ms)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    gw = result.gateway_cpu_s
    broker_total = sum(result.broker_cpu_s.values())
    print(f"{result.engine}: {fleet.nodes} nodes on {fleet.gateways} gateways "
          f"({fleet.traffic} traffic), {fleet.seconds:.0f} s of traffic, drained in {wall:.0f} s")
    print(f"  frames {result.frames}  rows missing {result.missing}  duplicates absorbed "
          f"{result.duplicates}  ({result.frames / wall:.1f} frames/s)")
    print(f"  node-to-database latency p50 {p50:.0f} ms  p99 {p99:.0f} ms")
    print(f"  cpu per gateway: mean {percent(statistics.mean(gw), wall):.1f} % of a core "
          f"(min {percent(min(gw), wall):.1f}, max {percent(max(gw), wall):.1f}), "
          f"{1000 * sum(gw) / frames:.2f} ms/frame")
    members = ", ".join(f"{name} {percent(cpu, wall):.1f} %"
                        for name, cpu in result.broker_cpu_s.items())
    print(f"  cpu per broker member: {members}; {1000 * broker_total / frames:.2f} ms/frame "
          f"in all")
    print(f"  cpu store {percent(result.store_cpu_s, wall):.1f} % "
          f"({1000 * result.store_cpu_s / frames:.2f} ms/row), postgresql "
          f"{percent(result.postgres_cpu_s, wall):.1f} % "
          f"({1000 * result.postgres_cpu_s / frames:.2f} ms/row)")


def verdicts(results: list[Result]) -> None:
    for result in results:
        lat = sorted(result.latencies_ms)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("inf")
        print(f"target {result.engine}: 0 missing: "
              f"{'met' if result.missing == 0 else f'MISSED ({result.missing} missing)'}; "
              f"p99 < {P99_TARGET_MS:.0f} ms: "
              f"{'met' if p99 < P99_TARGET_MS else f'MISSED ({p99:.0f} ms)'}")


async def main(quick: bool) -> int:
    fleet = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp, Postgres() as database:
        workdir = Path(tmp)
        with NatsCluster(3) as cluster:
            nats = await run_fleet("nats-3", cluster.urls,
                                   {m.name: m for m in cluster.members}, database, fleet,
                                   workdir)
        with Mosquitto() as broker:
            baseline = await run_fleet("mosquitto", [broker.url], {"mosquitto": broker},
                                       database, fleet, workdir)
    report(nats, fleet)
    report(baseline, fleet)
    ratio_cpu = (sum(nats.broker_cpu_s.values()) / max(1, nats.frames)) / max(
        1e-9, sum(baseline.broker_cpu_s.values()) / max(1, baseline.frames))
    print(f"ratio broker cpu per frame nats-3/mosquitto: {ratio_cpu:.1f}")
    print(f"ratio latency p50 nats-3/mosquitto: "
          f"{statistics.median(nats.latencies_ms) / statistics.median(baseline.latencies_ms):.2f}")
    verdicts([nats, baseline])
    return 0 if nats.missing == 0 and baseline.missing == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="100 nodes on 2 gateways for 20 s (instead of 1,000 on 10, 120 s)")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
