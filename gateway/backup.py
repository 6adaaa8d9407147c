"""``gateway backup`` and ``gateway restore``: the journal and the registry, kept together.

A backup is a folder (mode 0700: the registry holds the nodes' keys) with ``journal.sqlite3``,
``registry.toml`` and ``backup.json`` (what, when, from which gateway, checksums), written
last so that a folder without it is no backup. It is consistent while the gateway runs: the
journal is copied with SQLite's online backup API in one read transaction (a snapshot; the
gateway goes on writing its WAL), the registry is read under the lock its writers take.

A restore checks the backup whole first (manifest, checksums, schema version, a registry
without problems), refuses while a gateway holds the journal's run lock, and holds that lock
itself meanwhile. Nothing is lost: the journal and registry it replaces are kept beside them
as ``*.before-restore-<time>``. A journal of an older schema is migrated by the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import GatewayConfig
from .journal import SCHEMA_VERSION, schema_version
from .registry import Registry, RegistryError, check_registry, read_locked, write_atomically
from .runlock import GatewayRunning, RunLock
from .version import gateway_version

__all__ = ["MANIFEST", "BackupError", "Manifest", "make_backup", "restore_backup"]

MANIFEST = "backup.json"
JOURNAL_FILE = "journal.sqlite3"
REGISTRY_FILE = "registry.toml"
FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    """What ``backup.json`` says."""

    made_at: str
    gateway: str
    site: str
    streetsense: str
    schema_version: int
    undelivered: int
    nodes: int
    sums: dict[str, str]

    def document(self) -> dict[str, Any]:
        return {"format": FORMAT, "made_at": self.made_at, "gateway": self.gateway,
                "site": self.site, "streetsense": self.streetsense,
                "journal": {"file": JOURNAL_FILE, "schema_version": self.schema_version,
                            "undelivered": self.undelivered,
                            "sha256": self.sums[JOURNAL_FILE]},
                "registry": {"file": REGISTRY_FILE, "nodes": self.nodes,
                             "sha256": self.sums[REGISTRY_FILE]}}


def make_backup(config: GatewayConfig, dest: Path) -> Manifest:
    """Back up the journal and registry of ``config`` into the new folder ``dest``."""
    journal = config.journal.path
    if not journal.is_file():
        raise BackupError(f"there is no journal at {journal}: nothing to back up (has this "
                          "gateway run with this config?)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder: give a new one")
    try:
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(dest / REGISTRY_FILE, read_locked(config.registry_path))
        nodes = len(Registry.load(dest / REGISTRY_FILE))
        version, undelivered = _copy_journal(journal, dest / JOURNAL_FILE)
    except RegistryError as exc:
        raise BackupError(f"the registry has problems now ({exc.problems[0]}): fix it, then "
                          f"back up (the folder {dest} is no backup: remove it)") from None
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"backup into {dest} failed: {exc}; nothing there is a backup "
                          "(it has no backup.json): remove the folder and try again") from None
    manifest = Manifest(
        made_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        gateway=config.gateway.id, site=config.gateway.site, streetsense=gateway_version(),
        schema_version=version, undelivered=undelivered,
        nodes=nodes,
        sums={name: _sha256(dest / name) for name in (JOURNAL_FILE, REGISTRY_FILE)})
    write_atomically(dest / MANIFEST, json.dumps(manifest.document(), indent=2) + "\n")
    return manifest


def _copy_journal(journal: Path, copy: Path) -> tuple[int, int]:
    """Copy ``journal`` (live) to ``copy``: (schema version, undelivered rows) of the copy."""
    with contextlib.closing(sqlite3.connect(journal, timeout=10)) as source, \
            contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)  # all pages in one step: one read transaction, a snapshot
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        if target.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError(f"the copy of {journal} fails its integrity check")
        version = schema_version(target)
        undelivered = 0
        if version:
            undelivered = int(target.execute(
                "SELECT count(*) FROM messages WHERE published = 0").fetchone()[0])
    os.chmod(copy, 0o600)
    return version, undelivered


def restore_backup(config: GatewayConfig, source: Path) -> tuple[Manifest, list[Path]]:
    """Put the backup in ``source`` in place of ``config``'s journal and registry; returns
    the manifest and where the replaced files were kept."""
    manifest = _checked(source)
    try:
        with RunLock(config.journal.path):
            return manifest, _put_in_place(config, source)
    except GatewayRunning:
        raise BackupError(
            f"the gateway is running (it holds {config.journal.path}.lock): stop it first "
            "(sudo systemctl stop streetsense-gateway), restore, then start it") from None


def _checked(source: Path) -> Manifest:
    """The manifest of ``source`` once every file matches it."""
    try:
        document = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
        journal, registry = document["journal"], document["registry"]
        manifest = Manifest(
            made_at=document["made_at"], gateway=document["gateway"], site=document["site"],
            streetsense=document["streetsense"], schema_version=int(journal["schema_version"]),
            undelivered=int(journal["undelivered"]), nodes=int(registry["nodes"]),
            sums={JOURNAL_FILE: journal["sha256"], REGISTRY_FILE: registry["sha256"]})
    except FileNotFoundError:
        raise BackupError(f"{source} is not a StreetSense backup (it has no {MANIFEST}): give "
                          "a folder that 'streetsense gateway backup' made") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{source / MANIFEST} cannot be read ({exc}): the backup is damaged; "
                          "use another") from None
    for name, expected in manifest.sums.items():
        try:
            actual = _sha256(source / name)
        except OSError as exc:
            raise BackupError(f"cannot read {source / name} ({exc.strerror}): the backup is "
                              "incomplete; use another") from None
        if actual != expected:
            raise BackupError(f"{source / name} does not match its checksum in {MANIFEST}: "
                              "the backup is damaged; use another")
    if manifest.schema_version > SCHEMA_VERSION:
        raise BackupError(f"the backup's journal has schema version {manifest.schema_version}, "
                          f"newer than this streetsense knows ({SCHEMA_VERSION}): restore it "
                          f"with streetsense {manifest.streetsense} or later")
    problems = check_registry(source / REGISTRY_FILE)
    if problems:
        raise BackupError(f"the backup's registry has problems ({problems[0]}): use another "
                          "backup")
    return manifest


def _put_in_place(config: GatewayConfig, source: Path) -> list[Path]:
    """Replace the journal and registry, keeping the old ones beside them."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    journal, registry = config.journal.path, config.registry_path
    kept = []
    journal.parent.mkdir(parents=True, exist_ok=True)
    if journal.exists():
        # Fold the WAL into the database, so the file kept aside is whole on its own.
        with contextlib.closing(sqlite3.connect(journal)) as old:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        aside = journal.with_name(f"{journal.name}.before-restore-{stamp}")
        os.replace(journal, aside)
        kept.append(aside)
    for suffix in ("-wal", "-shm"):  # never let a stale WAL meet the restored database
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{journal}{suffix}")
    owner = (kept[0] if kept else journal.parent).stat()
    staging = journal.with_name(f".{journal.name}.restoring")
    shutil.copyfile(source / JOURNAL_FILE, staging)
    with open(staging, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(staging, 0o600)
    with contextlib.suppress(PermissionError):  # run as root: the gateway's user keeps it
        os.chown(staging, owner.st_uid, owner.st_gid)
    os.replace(staging, journal)
    if registry.exists():
        aside = registry.with_name(f"{registry.name}.before-restore-{stamp}")
        shutil.copy2(registry, aside)  # the same mode: it holds keys
        kept.append(aside)
    write_atomically(registry, (source / REGISTRY_FILE).read_text(encoding="utf-8"))
    return kept


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
