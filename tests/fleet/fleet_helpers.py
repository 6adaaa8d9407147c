"""Test parts for the fleet tests: the store running in the test's loop, rows read back from
its database, messages published as a gateway would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

from streetsense.hil.gateway_proc import GatewayProcess
from streetsense.tools.store import Store

Key = tuple[int, int, int]  # (node_id, boot, seq)


def rows(db_url: str, table: str) -> list[Key]:
    """(node_id, boot, seq) of every row of ``table``, sorted, read with a fresh connection
    (none while the store has not made the table yet)."""
    sql = f"SELECT node_id, boot, seq FROM {table} ORDER BY node_id, boot, seq"
    if db_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite://"))) as db:
            try:
                return [tuple(row) for row in db.execute(sql)]  # type: ignore[misc]
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
    import psycopg

    with psycopg.connect(db_url) as connection:
        try:
            return [tuple(row) for row in connection.execute(sql)]  # type: ignore[misc]
        except psycopg.errors.UndefinedTable:
            return []


def message(node_id: int, boot: int, seq: int, kind: str = "data",
            site: str = "test") -> tuple[str, bytes]:
    """(topic, payload) of a node message as a gateway publishes it (the fields the store reads)."""
    payload = {"node": f"HN-{node_id:04d}", "node_id": node_id, "kind": "air-quality",
               "site": site, "gateway": "gw-test", "boot": boot, "seq": seq,
               "ts": "2026-12-07T10:00:00Z", "received_at": "2026-12-07T10:00:00.125Z"}
    return f"streetsense/{site}/HN-{node_id:04d}/{kind}", json.dumps(payload).encode()


@contextlib.asynccontextmanager
async def store_running(**options: Any) -> AsyncIterator[Store]:
    """A `Store` (``Store(**options)``) running in this loop, subscribed when entered."""
    store = Store(**options)
    task = asyncio.create_task(store.run())
    try:
        async with asyncio.timeout(30):
            await store.subscribed.wait()
        yield store
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def keys(payloads: Sequence[dict[str, Any]]) -> list[Key]:
    """(node_id, boot, seq) of gateway payloads."""
    return [(p["node_id"], p["boot"], p["seq"]) for p in payloads]



def member_in_use(gateway: GatewayProcess) -> str:
    """The URL of the broker (cluster member) the gateway connected to last (from its log)."""
    return re.findall(r"connected to MQTT broker (\S+)", gateway.log())[-1]
