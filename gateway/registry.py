"""The node registry: which nodes this gateway accepts, their names, kinds and keys.

A TOML file of ``[[node]]`` tables (``id``, ``name``, ``kind``, ``key`` in hex, ``link``,
``location``, ``enabled``), checked as strictly as the config (every problem with its key
and line). `Registry.reload_if_changed()` picks up edits without a restart; a broken edit
is logged and the last good registry stays in use. `append_node` is how ``provision`` adds
a node: under a lock, checked as a whole, written atomically with the file's owner and mode.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .tomlcheck import (
    ABSENT,
    NAME,
    NAME_WHAT,
    LineIndex,
    Problem,
    ProblemsError,
    Table,
    finish,
    open_toml,
    parse_toml,
)

__all__ = [
    "KINDS",
    "LINKS",
    "NodeInfo",
    "Registry",
    "RegistryError",
    "append_node",
    "check_registry",
    "locked",
    "read_locked",
    "remove_node",
    "rename_node",
    "write_atomically",
]

log = logging.getLogger(__name__)

KINDS = ("air-quality", "traffic")
LINKS = ("serial", "ble")
KEY_BYTES = (16, 64)  # SPEC §2: per-node keys are 16 to 64 bytes
MAX_NODE_ID = 2**32 - 1  # u32 in the frame header; 0 is a node in factory state


@dataclass(frozen=True)
class NodeInfo:
    """One provisioned node as the gateway knows it."""

    id: int
    name: str
    kind: str
    key: bytes = field(repr=False)
    link: str = "serial"
    location: str = ""
    enabled: bool = True


class RegistryError(ProblemsError):
    """The registry file has problems; ``.problems`` lists them all, ``.path`` is the file."""


class Registry:
    """The nodes of a registry file, by id and by name."""

    def __init__(self, path: Path, nodes: tuple[NodeInfo, ...] = ()) -> None:
        self.path = path
        self._set(nodes)
        self._stamp: tuple[int, int, int] | None = None
        self._bad_stamp: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        """The registry in ``path``; raises `RegistryError` with every problem found."""
        registry = cls(Path(path))
        stamp = _stamp(registry.path)
        nodes, problems = _read_file(registry.path)
        if problems:
            raise RegistryError(registry.path, problems)
        registry._set(nodes)
        registry._stamp = stamp
        return registry

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        """Every node, in file order."""
        return self._nodes

    def lookup(self, node_id: int) -> NodeInfo | None:
        """The node with this id, or None."""
        return self._by_id.get(node_id)

    def by_name(self, name: str) -> NodeInfo | None:
        """The node with this name, or None."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self._nodes)

    def reload_if_changed(self) -> bool:
        """Re-read the file if it changed (mtime, size or inode); True if new nodes are in use.

        A file that now has problems (or is gone) is logged once and the current nodes stay.
        """
        try:
            stamp = _stamp(self.path)
        except OSError as error:
            stamp = None
            problems = [Problem("", None, f"cannot read {self.path}: {error.strerror}")]
        else:
            if stamp == self._stamp:
                return False
            nodes, problems = _read_file(self.path)
        if problems:
            if stamp is None or stamp != self._bad_stamp:
                self._bad_stamp = stamp
                details = "; ".join(map(str, problems))
                log.warning(
                    "registry %s not reloaded, keeping %d nodes: %s",
                    self.path,
                    len(self._nodes),
                    details,
                )
            return False
        self._set(nodes)
        self._stamp = stamp
        log.info("registry %s reloaded: %d nodes", self.path, len(nodes))
        return True

    def _set(self, nodes: tuple[NodeInfo, ...]) -> None:
        self._nodes = nodes
        self._by_id = {node.id: node for node in nodes}
        self._by_name = {node.name: node for node in nodes}


def check_registry(path: str | Path) -> list[Problem]:
    """Every problem in the registry file at ``path`` (empty when it is fine)."""
    return _read_file(Path(path))[1]


def append_node(path: str | Path, node: NodeInfo) -> None:
    """Add ``node`` as a new ``[[node]]`` at the end of the registry file (created if absent).

    Raises `RegistryError` if the result would have a problem: the id or name is already
    taken, a field is invalid, or the file was broken before. Comments and layout of the
    existing file are kept; the file is replaced atomically, keeping its owner and mode.
    """
    path = Path(path)
    with locked(path.parent):
        old = path.read_text(encoding="utf-8") if path.exists() else _NEW_FILE
        text = old + ("\n" if old and not old.endswith("\n") else "") + "\n" + _entry(node)
        root, problems = parse_toml(text, path.resolve().parent)
        if root is not None:
            problems = _read_nodes(root)[1]
        if problems:
            raise RegistryError(path, problems)
        write_atomically(path, text)


def rename_node(path: str | Path, name: str, new_name: str) -> NodeInfo:
    """Give node ``name`` the name ``new_name`` in the registry file; returns it renamed.

    Raises `RegistryError` if there is no such node, or the new name is invalid or taken."""
    path = Path(path)
    with locked(path.parent):
        lines, position, start, _ = _node_lines(path, name)
        number = LineIndex("\n".join(lines)).line(f"node[{position}].name") or start
        found = _NAME_LINE.match(lines[number - 1])
        if found is None:
            raise RegistryError(path, [Problem("", start, f"the name of node {name} is not on "
                                               "a 'name = \"...\"' line: edit it by hand")])
        lines[number - 1] = found.group(1) + _toml_string(new_name) + found.group(3)
        return _checked_write(path, lines, lambda nodes: nodes.get(new_name))


def remove_node(path: str | Path, name: str) -> NodeInfo:
    """Remove node ``name`` (its table and the comment lines right above it) from the
    registry file; returns it. Raises `RegistryError` if there is no such node."""
    path = Path(path)
    with locked(path.parent):
        lines, _, start, end = _node_lines(path, name)
        removed = _checked_nodes(path, lines)[name]
        first = start - 1
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        _checked_write(path, lines[:first] + lines[end:], lambda nodes: removed)
        return removed


_NAME_LINE = re.compile(r"""^(\s*name\s*=\s*)("(?:[^"\\]|\\.)*"|'[^']*')(.*)$""")


def _node_lines(path: Path, name: str) -> tuple[list[str], int, int, int]:
    """The file's lines; which ``[[node]]`` node ``name`` is, and the lines of its table:
    from its header (1-based) to the next table's header (exclusive, 0-based end)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = LineIndex("\n".join(lines))
    nodes = _checked_nodes(path, lines)
    if name not in nodes:
        raise RegistryError(path, [Problem("", None, f"there is no node named {name}")])
    position = list(nodes).index(name)
    start = index.line(f"node[{position}]")
    assert start is not None
    end = start
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    while end > start and (not lines[end - 1].strip()
                           or lines[end - 1].lstrip().startswith("#")):
        end -= 1  # blank lines, and the comments above the next table, stay
    return lines, position, start, end


def _checked_nodes(path: Path, lines: list[str]) -> dict[str, NodeInfo]:
    """The nodes of ``lines`` by name, in file order; `RegistryError` with any problem."""
    root, problems = parse_toml("\n".join(lines) + "\n", path.resolve().parent)
    nodes: tuple[NodeInfo, ...] = ()
    if root is not None:
        nodes, problems = _read_nodes(root)
    if problems:
        raise RegistryError(path, problems)
    return {node.name: node for node in nodes}


def _checked_write(path: Path, lines: list[str],
                   result: Callable[[dict[str, NodeInfo]], NodeInfo | None]) -> NodeInfo:
    """Check ``lines`` as a whole registry, write them atomically; ``result`` picks the
    node to return from the new nodes."""
    node = result(_checked_nodes(path, lines))
    assert node is not None
    write_atomically(path, "\n".join(lines) + "\n")
    return node


def read_locked(path: str | Path) -> str:
    """The registry file's text, read under the lock its writers take (a consistent copy)."""
    path = Path(path)
    with locked(path.parent):
        return path.read_text(encoding="utf-8")


_NEW_FILE = """\
# StreetSense gateway node registry: one [[node]] table per provisioned node.
# It holds the nodes' keys: keep it readable by the gateway's user only (mode 0600).
"""


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when the file is edited or replaced."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size, info.st_ino


def _read_file(path: Path) -> tuple[tuple[NodeInfo, ...], list[Problem]]:
    root, problems = open_toml(path)
    return ((), problems) if root is None else _read_nodes(root)


def _read_nodes(root: Table) -> tuple[tuple[NodeInfo, ...], list[Problem]]:
    if "node" not in root.data and ("gateway" in root.data or "registry_path" in root.data):
        named = root.data.get("registry_path", "nodes.toml")
        return (), [Problem("", None, f"this is a gateway config, not a node registry: give "
                                      f"the registry it names in registry_path ({named})")]
    nodes: list[NodeInfo] = []
    first_line: dict[tuple[str, object], tuple[str, int | None]] = {}
    for table in root.tables("node"):
        node = _read_node(table)
        if node is None:
            continue
        for field_name, value in (("id", node.id), ("name", node.name)):
            key = table.key(field_name)
            earlier = first_line.get((field_name, value))
            if earlier is not None:
                where = f" (line {earlier[1]})" if earlier[1] is not None else ""
                table.problem(field_name, f"{value!r} is already used by node {earlier[0]}{where}")
            else:
                first_line[(field_name, value)] = (node.name, table.reader.lines.line(key))
        nodes.append(node)
    problems = finish(root)
    return (() if problems else tuple(nodes)), problems


def _read_node(table: Table) -> NodeInfo | None:
    """One ``[[node]]``; None if it has a problem (reported)."""
    before = len(table.reader.problems)
    if "id" not in table.data:
        table.problem("id", "is required")
    node_id = table.integer("id", 0, low=1, high=MAX_NODE_ID)
    name = table.text("name", required=True, pattern=NAME, what=f'{NAME_WHAT} (e.g. "HN-0042")')
    kind = table.text("kind", required=True, choices=KINDS)
    key = _key(table)
    node = NodeInfo(
        id=node_id,
        name=name or "",
        kind=kind or "",
        key=key,
        link=table.text("link", "serial", choices=LINKS) or "",
        location=table.text("location", "") or "",
        enabled=table.flag("enabled", True),
    )
    table.done()
    return node if len(table.reader.problems) == before else None


def _key(table: Table) -> bytes:
    text = table.value("key", lambda v: isinstance(v, str), "a hex string", required=True)
    if text is ABSENT:
        return b""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        table.problem("key", 'is not hex (two digits per byte, e.g. "00ff...")')
        return b""
    if not KEY_BYTES[0] <= len(key) <= KEY_BYTES[1]:
        low, high = KEY_BYTES
        table.problem("key", f"is {len(key)} bytes: keys are {low} to {high} bytes")
    return key


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(
        f"\\u{ord(char):04x}"
        if ord(char) < 0x20 or ord(char) == 0x7F
        else "\\" + char
        if char in '"\\'
        else char
        for char in text
    )
    return f'"{escaped}"'


def _entry(node: NodeInfo) -> str:
    """The ``[[node]]`` table for ``node``; a comment says when it was added."""
    added = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"# added {added}\n"
        "[[node]]\n"
        f"id = {node.id:d}\n"
        f"name = {_toml_string(node.name)}\n"
        f"kind = {_toml_string(node.kind)}\n"
        f"key = {_toml_string(node.key.hex())}\n"
        f"link = {_toml_string(node.link)}\n"
        f"location = {_toml_string(node.location)}\n"
        f"enabled = {'true' if node.enabled else 'false'}\n"
    )


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the registry's ``folder`` (every writer takes it): the registry
    file itself is replaced, so its inode is no stable thing to lock."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename, fsync the folder),
    keeping the owner and mode of the file it replaces (0600 for a new one)."""
    try:
        info: os.stat_result | None = path.stat()
    except FileNotFoundError:
        info = None
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, info.st_mode & 0o7777 if info else 0o600)
        if info is not None:
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(temp, info.st_uid, info.st_gid)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
