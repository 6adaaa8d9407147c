"""Where ``provision`` writes a node's key: the registry file, checked before the node is keyed.

A key exists in two places only: on the node and in a registry file. So the file is checked
*before* anything is sent to the node (its folder exists, you may write there, a file that
is there is a registry, the id and name are free); the key then goes into it and never onto
the screen. If writing still fails after the node took its key (a full disk, a file
replaced meanwhile), the entry goes into a rescue file readable by you only, so the key is
not lost.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click

from streetsense.gateway.registry import NodeInfo, Registry, RegistryError, append_node

__all__ = ["RegistryPathError", "check_entry", "check_registry_path", "register"]

NOTHING_SENT = "nothing was sent to the node"


class RegistryPathError(click.ClickException):
    """The registry file cannot take the node; the message says what to do."""


def check_registry_path(path: Path) -> Registry | None:
    """The registry at ``path`` (None while the file does not exist yet), once it is sure
    that provision can write it; else `RegistryPathError` naming the file and what to do."""
    folder = path.parent
    if not folder.is_dir():
        raise RegistryPathError(
            f"the registry's folder {folder} does not exist: check --registry {path} for a "
            f"typo, or create the folder first (mkdir -p {folder}); {NOTHING_SENT}.")
    _check_writable(path)
    if not path.exists():
        sibling = _other_registry(path)
        if sibling is not None:
            raise RegistryPathError(
                f"{path} does not exist, but {sibling} next to it is a node registry: if you "
                f"meant that one, give --registry {sibling}; to start a new registry at "
                f"{path}, create it first (touch {path}); {NOTHING_SENT}.")
        return None
    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise RegistryPathError(f"{exc}\nFix the registry first; {NOTHING_SENT}.") from None


def _check_writable(path: Path) -> None:
    """The registry is replaced atomically through a temporary file in its folder: try one."""
    who = getpass.getuser()
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise RegistryPathError(
            f"you ({who}) may not read and write the registry {path}: run provision as the "
            f"user that owns it (e.g. with sudo -u), or give another --registry; "
            f"{NOTHING_SENT}.")
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise RegistryPathError(
            f"you ({who}) cannot write the registry {path}: its folder {path.parent} does not "
            f"let you create files ({exc.strerror}). Run provision as a user who may write "
            f"there (e.g. with sudo -u), or give another --registry; {NOTHING_SENT}.") from None
    os.close(fd)
    os.unlink(probe)


def _other_registry(path: Path) -> Path | None:
    """Another ``*.toml`` file in the same folder holding ``[[node]]`` tables, if any."""
    for candidate in sorted(path.parent.glob("*.toml")):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if "[[node]]" in candidate.read_text(encoding="utf-8"):
                return candidate
    return None


def check_entry(path: Path, node: NodeInfo) -> None:
    """Refuse, before the node is touched, an entry the registry would refuse after it."""
    with tempfile.TemporaryDirectory(prefix="streetsense-provision-") as scratch:
        trial = Path(scratch) / path.name
        if path.exists():
            shutil.copyfile(path, trial)
        try:
            append_node(trial, node)
        except RegistryError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            raise RegistryPathError(f"the registry entry would be refused ({problems}): choose "
                                    f"another --node-id/--name; {NOTHING_SENT}.") from None


def rescue_folder() -> Path:
    """Where entries go that the registry could not take: ``$XDG_STATE_HOME/streetsense``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "streetsense"


def register(path: Path, node: NodeInfo) -> Path:
    """Append ``node`` to the registry at ``path``; returns the file that holds it.

    If the registry cannot be written, the entry goes to a new rescue file (mode 0600) and
    `RegistryPathError` says where; if that fails too, it says the key is lost.
    """
    try:
        append_node(path, node)
        return path
    except (RegistryError, OSError) as exc:
        reason = "; ".join(map(str, exc.problems)) if isinstance(exc, RegistryError) \
            else exc.strerror or str(exc)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rescue = rescue_folder() / f"node-{node.id}-{stamp}.toml"
    try:
        rescue.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        append_node(rescue, node)
    except (RegistryError, OSError):
        raise RegistryPathError(
            f"node {node.id} took its new key, but it could not be written to {path} "
            f"({reason}) nor to a rescue file in {rescue.parent}: the key is lost. "
            f"Factory-reset the node (hold BOOT while powering it up), then provision it "
            f"again.") from None
    raise RegistryPathError(
        f"node {node.id} took its new key, but it could not be written to {path} ({reason}): "
        f"its entry is in {rescue} (readable by you only). Add that entry to the gateway's "
        f"registry, then delete the file.")
