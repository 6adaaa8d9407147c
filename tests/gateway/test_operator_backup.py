"""Backup and restore of the journal and registry, the journal's schema version and its
migration, and one gateway per journal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streetsense.gateway.backup import BackupError, make_backup, restore_backup
from streetsense.gateway.journal import SCHEMA_VERSION, Journal, JournalError
from streetsense.gateway.runlock import GatewayRunning
from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto, TcpProxy
from streetsense.hil.gateway_proc import to_toml
from tests.support.gateway_rig import make_config, node_info

# The journal schema as streetsense 0.1.0 made it, before versions were recorded (version 1).
SCHEMA_V1 = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, node_id INTEGER NOT NULL, boot INTEGER NOT NULL,
    seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0, correlation BLOB, delayable INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL, published INTEGER NOT NULL DEFAULT 0);
CREATE INDEX pending ON messages(id) WHERE published = 0;
CREATE TABLE replay (node_id INTEGER PRIMARY KEY, boots TEXT NOT NULL);
CREATE TABLE downlink (node_id INTEGER NOT NULL, boot INTEGER NOT NULL,
    counter INTEGER NOT NULL, PRIMARY KEY (node_id, boot));
CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def version_1_journal(path: Path) -> None:
    """A journal as version 1 left it: two undelivered rows, node 42's replay state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA_V1)
        db.executemany("INSERT INTO messages(node_id, boot, seq, topic, payload, received_at) "
                       "VALUES (42, 1, ?, 'streetsense/test/HN-0042/data', ?, 1000.0)",
                       [(seq, json.dumps({"seq": seq}).encode()) for seq in (0, 1)])
        db.execute("INSERT INTO replay VALUES (42, '{\"1\": 1}')")
        db.commit()


def test_journal_version_1_is_migrated_with_its_rows(tmp_path: Path) -> None:
    """A journal made by the schema before versions (user_version 0) opens as version 1 and
    is migrated to the current version in place: undelivered rows and replay state stay;
    the migration is recorded in its meta table."""
    path = tmp_path / "journal.sqlite3"
    version_1_journal(path)
    journal = Journal(path)
    try:
        rows = journal.pending(0, 10)
        assert [json.loads(row.payload)["seq"] for row in rows] == [0, 1]
        assert journal.load_replay() == {42: {1: 1}}
        meta = journal.meta()
    finally:
        journal.close()
    assert list(meta) == [f"migrated_to_{SCHEMA_VERSION}"]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reopened = Journal(path)  # already current: opened as it is, nothing more recorded
    try:
        assert reopened.meta() == meta and len(reopened.pending(0, 10)) == 2
    finally:
        reopened.close()


def test_journal_of_a_newer_schema_is_refused_in_one_sentence(tmp_path: Path) -> None:
    """A journal whose schema version is newer than this gateway's is refused with a
    JournalError that says so and what to do; it is left untouched."""
    path = tmp_path / "journal.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE messages (id INTEGER)")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match=f"schema version {SCHEMA_VERSION + 1}, newer than "
                                           "this gateway knows"):
        Journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


async def test_backup_while_running_and_restore_with_the_gateway_stopped(
        tmp_path: Path, mosquitto: Mosquitto, mosquitto_proxy: TcpProxy) -> None:
    """A backup taken while the gateway writes (broker away: rows pile up) holds a consistent
    journal and the registry; restore refuses while a gateway runs on that journal, and once
    it has stopped puts the backup in place, keeping the replaced files beside it; the
    restored journal's undelivered rows are there for the next start."""
    config = make_config(tmp_path / "site", mosquitto_proxy.url, [], [node_info(42), node_info(43)])
    mosquitto_proxy.blackhole(True)
    dest = tmp_path / "backup"
    async with Gateway(config).running() as gateway:
        assert gateway.journal is not None
        writing = asyncio.create_task(_fill(gateway.journal, 200))
        manifest = await asyncio.to_thread(make_backup, config, dest)
        await writing
        with pytest.raises(BackupError, match=r"the gateway is running \(it holds .*\.lock\): "
                                              "stop it first"):
            restore_backup(config, dest)
    assert manifest.nodes == 2 and manifest.schema_version == SCHEMA_VERSION
    assert 0 <= manifest.undelivered <= 200
    assert sorted(p.name for p in dest.iterdir()) == ["backup.json", "journal.sqlite3",
                                                      "registry.toml"]
    assert (dest.stat().st_mode & 0o777) == 0o700
    assert (dest / "registry.toml").read_text() == config.registry_path.read_text()
    config.registry_path.write_text("")  # the site loses its registry; the journal goes on
    restored, kept = restore_backup(config, dest)
    assert restored == manifest and len(kept) == 2
    assert all(path.exists() for path in kept)
    journal = Journal(config.journal.path)
    try:
        assert len(journal.pending(0, 1000)) == manifest.undelivered
    finally:
        journal.close()
    assert "HN-0043" in config.registry_path.read_text()


async def _fill(journal: Journal, count: int) -> None:
    """Commit ``count`` one-row batches, one at a time, on the journal's thread."""
    from streetsense.gateway.journal import Batch, Message

    for seq in range(count):
        batch = Batch([(7, 1, seq, time.time(), [Message("t/x/data", b"{}")])], {7: {1: seq}})
        await journal.call(journal.commit, batch)


def test_restore_refuses_a_damaged_or_foreign_folder(tmp_path: Path) -> None:
    """restore checks the backup whole before touching anything: a folder without a
    manifest, and a journal that does not match its checksum, are refused in one sentence
    each, and the current journal and registry are left as they were."""
    config = make_config(tmp_path / "site", "mqtt://127.0.0.1:1", [], [node_info(42)])
    version_1_journal(config.journal.path)
    dest = tmp_path / "backup"
    make_backup(config, dest)
    before = config.journal.path.read_bytes()
    with pytest.raises(BackupError, match="is not a StreetSense backup"):
        restore_backup(config, tmp_path)
    with (dest / "journal.sqlite3").open("ab") as damaged:
        damaged.write(b"\0")
    with pytest.raises(BackupError, match="does not match its checksum"):
        restore_backup(config, dest)
    assert config.journal.path.read_bytes() == before


async def test_a_second_gateway_on_the_same_journal_is_refused(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Two gateways must not share a journal: the second refuses to start, naming the first
    one's process and what to do; the CLI says the same in one sentence."""
    config = make_config(tmp_path, mosquitto.url, [], [node_info(42)])
    async with Gateway(config).running():
        with pytest.raises(GatewayRunning, match=r"another gateway \(process \d+\) is using "
                                                 "the journal"):
            await Gateway(config).start()
        document = {"registry_path": str(config.registry_path),
                    "gateway": {"id": "gw-2", "site": "test", "data_dir": str(tmp_path / "d")},
                    "mqtt": {"url": mosquitto.url}, "http": {"listen": False},
                    "journal": {"path": str(config.journal.path)}}
        (tmp_path / "second.toml").write_text(to_toml(document))
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "streetsense.tools.gateway", "run",
                             "--config", str(tmp_path / "second.toml")],
            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "two gateways must not share one" in result.stderr
    assert "Traceback" not in result.stderr


def test_backup_and_restore_commands(tmp_path: Path) -> None:
    """`gateway backup` and `gateway restore` through the CLI: each says what it did in one
    line (never a key); backup into a folder that is not empty is refused."""
    from click.testing import CliRunner

    from streetsense.tools.gateway import gateway as gateway_cli

    config = make_config(tmp_path, "mqtt://127.0.0.1:1", [], [node_info(42)])
    version_1_journal(config.journal.path)
    path = tmp_path / "gateway.toml"
    path.write_text(to_toml({"registry_path": str(config.registry_path),
                             "gateway": {"id": "gw-1", "site": "test",
                                         "data_dir": str(config.gateway.data_dir)},
                             "mqtt": {"url": "mqtt://127.0.0.1:1"},
                             "journal": {"path": str(config.journal.path)}}))
    runner = CliRunner()
    made = runner.invoke(gateway_cli, ["backup", "--config", str(path), str(tmp_path / "b")])
    again = runner.invoke(gateway_cli, ["backup", "--config", str(path), str(tmp_path / "b")])
    put = runner.invoke(gateway_cli, ["restore", "--config", str(path), str(tmp_path / "b")])
    assert made.exit_code == 0, made.output
    assert "journal (schema version 1, 2 undelivered messages) and registry (1 nodes)" \
        in made.output
    assert again.exit_code == 1 and "exists and is not an empty folder" in again.output
    assert put.exit_code == 0, put.output
    assert "restored the backup of gateway gw-1" in put.output
    assert node_info(42).key.hex() not in made.output + put.output
