"""`streetsense store`: node messages into PostgreSQL or SQLite, one row per frame, each
acknowledged to the broker only once its row is committed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from streetsense.hil.broker import Mosquitto
from streetsense.hil.postgres import Postgres
from tests.fleet.fleet_helpers import message, rows, store_running
from tests.support.polling import until


async def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1 publishes, each PUBACKed, as a gateway sends them."""
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port), identifier="test-publisher") as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'city.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


async def test_store_writes_one_row_per_frame(mosquitto: Mosquitto, db_url: str) -> None:
    """data, event and status messages become rows keyed by (node_id, boot, seq); a message
    delivered twice is stored once (counted as a duplicate); a message that is not a node's
    JSON is kept in `rejected` with the reason, never dropped."""
    frames = ([message(node, 1, seq) for node in (7, 8) for seq in range(10)]
              + [message(7, 1, seq, "event") for seq in range(10, 15)]
              + [message(8, 2, seq, "status") for seq in range(3)])
    bad = [("streetsense/test/HN-0007/data", b"\xff not json"),
           ("streetsense/test/HN-0007/event", b'{"node_id": 7, "boot": 1}')]
    async with store_running(brokers=[mosquitto.url], db_url=db_url) as store:
        await publish(mosquitto.url, frames + frames[:10] + bad)
        total = len(frames) + 10 + len(bad)
        async with asyncio.timeout(20):
            await store.wait_for(lambda stats: stats.received >= total)
    assert rows(db_url, "data") == sorted((node, 1, seq) for node in (7, 8) for seq in range(10))
    assert rows(db_url, "event") == [(7, 1, seq) for seq in range(10, 15)]
    assert rows(db_url, "status") == [(8, 2, seq) for seq in range(3)]
    assert (store.stats.stored, store.stats.duplicates, store.stats.rejected) == (28, 10, 2)


def _store_process(broker: str, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streetsense.tools.cli", "store", "--broker", broker,
             "--db", db_url, "--client-id", "city-store"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def test_store_acks_only_committed_rows(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """PostgreSQL goes down while messages arrive; the store, unable to commit, is SIGKILLed;
    with the database back, a new store gets every message again from its persistent session:
    exactly one row per frame, none lost."""
    log = tmp_path / "store.log"
    with Postgres() as database:
        store = _store_process(mosquitto.url, database.url, log)
        try:
            await until(lambda: "subscribed to" in log.read_text())
            await publish(mosquitto.url, [message(5, 1, seq) for seq in range(10)])
            await until(lambda: len(rows(database.url, "data")) == 10)
            await asyncio.to_thread(database.stop)
            await publish(mosquitto.url, [message(5, 1, seq) for seq in range(10, 20)])
            await until(lambda: "database not writable" in log.read_text())
            os.kill(store.pid, signal.SIGKILL)
            store.wait()
            await asyncio.to_thread(database.start)
            store = _store_process(mosquitto.url, database.url, log)
            await until(lambda: len(rows(database.url, "data")) == 20)
            store.send_signal(signal.SIGTERM)
            assert store.wait(timeout=10) == 0, log.read_text()
        finally:
            store.kill()
            store.wait()
        assert rows(database.url, "data") == [(5, 1, seq) for seq in range(20)]


@pytest.mark.parametrize(("args", "says"), [
    (["--broker", "http://broker", "--db", "sqlite:///tmp/x.db"], "not mqtt://host"),
    (["--broker", "mqtt://127.0.0.1:1", "--db", "mysql://city"], "not postgresql://"),
    (["--broker", "mqtt://127.0.0.1:1", "--db", "sqlite:"], "no file"),
])  # fmt: skip
def test_store_refuses_bad_urls_with_a_sentence(args: list[str], says: str) -> None:
    """A broker or database URL the store cannot use ends the command with what is wrong."""
    result = subprocess.run([sys.executable, "-m", "streetsense.tools.cli", "store", *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
