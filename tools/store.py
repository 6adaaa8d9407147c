"""``streetsense store``: the nodes' messages from the broker into the city's database, once each.

It subscribes to ``<prefix>/<site>/+/{data,event,status}`` with QoS 1 and a persistent
session (MQTT 3.1.1 clean session off; MQTT 5 clean start off with a session that outlives
the connection), so the broker keeps what arrives while the store is away. The PUBACK of a
message is held back until its row is committed (paho's manual acknowledgement: aiomqtt has
no API for it yet, so the store sets it on aiomqtt's paho client); a store that dies before
its commit gets the message again. Rows are keyed by (node_id, boot, seq) under a unique
constraint, so what at-least-once MQTT delivers twice is stored once (`store_db`).

Messages that arrived meanwhile are written in one transaction (group commit). ``--broker``
is given once per cluster member; when the one in use is lost the next is tried at once
(`Failover`, as the gateway does). A database that refuses or is gone holds the messages
unacknowledged and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import click
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from streetsense.gateway.failover import Failover
from streetsense.gateway.topics import Topics

from .command import read_password
from .store_db import (
    KINDS,
    Database,
    DatabaseError,
    Record,
    Rejected,
    open_database,
    record_from_message,
)

__all__ = ["Store", "StoreStats", "broker_address", "store"]

log = logging.getLogger("streetsense.store")

BATCH_MAX = 500  # messages per transaction at most
SESSION_EXPIRY_S = 7 * 24 * 3600  # MQTT 5: how long the broker keeps the session of a store away


@dataclass
class StoreStats:
    """What the store has done since it started."""

    received: int = 0
    stored: int = 0  # new rows committed
    duplicates: int = 0  # messages whose (node_id, boot, seq) was already stored
    rejected: int = 0  # kept in the rejected table
    commits: int = 0


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
        parts = parts._replace(scheme="")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url}: not mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    return parts.hostname, port or (8883 if tls else 1883), tls


class Store:
    """Subscribes, writes batches, acknowledges after the commit; ``run()`` until cancelled."""

    def __init__(self, *, brokers: Sequence[str], db_url: str, prefix: str = "streetsense",
                 site: str = "+", client_id: str = "streetsense-store", protocol: str = "5",
                 username: str | None = None, password: str | None = None,
                 seed: int | None = None) -> None:
        self.members = [broker_address(url) for url in brokers]
        self.db_url = db_url
        self.topics = [Topics(prefix, site).node("+", kind) for kind in KINDS]
        self.client_id = client_id
        self.protocol = protocol
        self.username = username
        self.password = password
        rng = random.Random(seed)
        self.failover = Failover(self.members, rng=rng)
        self._db_retry = Failover([db_url], rng=rng)
        self._db: Database | None = None
        self.stats = StoreStats()
        self.subscribed = asyncio.Event()  # set while subscribed on a connection
        self._committed = asyncio.Condition()  # notified after each commit

    @property
    def member_url(self) -> str:
        host, port, tls = self.failover.current
        return f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"

    def _client(self) -> aiomqtt.Client:
        host, port, tls = self.failover.current
        v5 = self.protocol == "5"
        session: dict[str, Any] = {"clean_session": False}  # MQTT 3.1.1
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            session = {"clean_start": False, "properties": properties}
        client = aiomqtt.Client(
            host, port, identifier=self.client_id, username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            keepalive=10, timeout=10.0, tls_context=ssl.create_default_context() if tls else None,
            **session)
        # PUBACK only once the row is committed: paho's manual acknowledgement (aiomqtt does
        # not expose it yet, see its pull request 346).
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Store until cancelled: reconnect to the broker (next member) and the database."""
        try:
            while True:
                pause_s = 0.0
                try:
                    if self._db is None:
                        self._db = await asyncio.to_thread(open_database, self.db_url)
                        self._db_retry.connected()
                    async with self._client() as client:
                        log.info("connected to MQTT broker %s as %s", self.member_url,
                                 self.client_id)
                        self.failover.connected()
                        await self._session(client, self._db)
                except* DatabaseError as group:
                    self._close_db()
                    pause_s = self._db_retry.failed()
                    log.error("database not writable (%s); retrying in %.1f s, messages stay "
                              "unacknowledged", group.exceptions[0], pause_s)
                except* (aiomqtt.MqttError, OSError) as group:
                    lost = self.member_url
                    pause_s = max(pause_s, self.failover.failed())
                    log.warning("MQTT broker %s unreachable (%s); trying %s in %.1f s", lost,
                                group.exceptions[0], self.member_url, pause_s)
                finally:
                    self.subscribed.clear()
                await asyncio.sleep(pause_s)
        finally:
            self._close_db()

    def _close_db(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None

    async def _session(self, client: aiomqtt.Client, db: Database) -> None:
        for topic in self.topics:
            await client.subscribe(topic, qos=1)
        self.subscribed.set()
        log.info("subscribed to %s (QoS 1, persistent session)", ", ".join(self.topics))
        messages = client.messages
        async for message in messages:
            batch = [message]
            while len(messages) and len(batch) < BATCH_MAX:
                batch.append(await anext(messages))
            await self._write(client, db, batch)

    async def _write(self, client: aiomqtt.Client, db: Database,
                     batch: list[aiomqtt.Message]) -> None:
        records: list[Record] = []
        rejected: list[Rejected] = []
        for message in batch:
            payload = message.payload
            raw = payload if isinstance(payload, bytes) else str(payload).encode()
            item = record_from_message(message.topic.value, raw)
            if isinstance(item, Record):
                records.append(item)
            else:
                rejected.append(item)
        for problem in rejected:
            log.warning("message on %s kept in table rejected: %s", problem.topic, problem.reason)
        inserted = await asyncio.to_thread(db.write, records, rejected)
        stats = self.stats
        stats.received += len(batch)
        stats.stored += inserted
        stats.duplicates += len(records) - inserted
        stats.rejected += len(rejected)
        stats.commits += 1
        for message in batch:  # committed: now the broker may forget them
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)
        async with self._committed:
            self._committed.notify_all()

    async def wait_for(self, predicate: Callable[[StoreStats], bool]) -> None:
        """Until ``predicate(stats)`` holds after a commit (or already does)."""
        async with self._committed:
            await self._committed.wait_for(lambda: predicate(self.stats))


async def _serve(store_: Store) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await store_.run()
    stats = store_.stats
    log.info("store stopped: %d messages, %d rows stored, %d duplicates, %d rejected",
             stats.received, stats.stored, stats.duplicates, stats.rejected)


@click.command()
@click.option("--broker", "brokers", multiple=True, required=True, metavar="URL",
              envvar="STREETSENSE_STORE_BROKER",
              help="mqtt://host[:port] (or mqtts://) of the broker; repeat it for each member "
                   "of a broker cluster, tried in turn when the one in use is lost.")
@click.option("--db", "db_url", required=True, metavar="URL", envvar="STREETSENSE_STORE_DB",
              help="postgresql://user@host:port/dbname or sqlite:///path/to/file.db")
@click.option("--prefix", default="streetsense", show_default=True, help="MQTT topic prefix.")
@click.option("--site", default="+", show_default=True, help="One site, or + for every site.")
@click.option("--client-id", default="streetsense-store", show_default=True,
              help="Stable MQTT client id: the broker keeps the session under it.")
@click.option("--protocol", type=click.Choice(["5", "3.1.1"]), default="5", show_default=True,
              help="MQTT version (NATS speaks 3.1.1 only).")
@click.option("--username", default=None, help="MQTT user name.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="File whose first line is the MQTT password.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def store(brokers: tuple[str, ...], db_url: str, prefix: str, site: str, client_id: str,
          protocol: str, username: str | None, password_file: Path | None,
          log_level: str) -> None:
    """Store the nodes' data, event and status messages in PostgreSQL or SQLite, each once."""
    for url in brokers:
        try:
            broker_address(url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--broker") from None
    try:
        open_database(db_url).close()  # a wrong URL or an unreachable server: say so now
    except DatabaseError as exc:
        raise click.BadParameter(str(exc), param_hint="--db") from None
    password = None
    if password_file is not None:
        password = read_password(password_file)
    logging.basicConfig(level=log_level.upper(), stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paho").setLevel(logging.WARNING)
    asyncio.run(_serve(Store(brokers=brokers, db_url=db_url, prefix=prefix, site=site,
                             client_id=client_id, protocol=protocol, username=username,
                             password=password)))
