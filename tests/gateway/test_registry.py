"""Node registry: strict loading, hot reload, and safe appends by provisioning."""

import logging
import stat
import textwrap
import threading
from pathlib import Path

import pytest

from streetsense.gateway.registry import (
    NodeInfo,
    Registry,
    RegistryError,
    append_node,
    check_registry,
)

KEY = bytes(range(32))
TWO_NODES = f"""\
# Hoan Kiem poles
[[node]]
id = 42
name = "HN-0042"
kind = "air-quality"
key = "{KEY.hex()}"
location = "Hang Bai / Trang Tien"

[[node]]
id = 43
name = "HN-0043"
kind = "traffic"
key = "{KEY.hex()}"
link = "ble"
enabled = false
"""


def node(
    node_id: int, name: str, *, link: str = "serial", location: str = "", enabled: bool = True
) -> NodeInfo:
    """An air-quality NodeInfo with the test key."""
    return NodeInfo(node_id, name, "air-quality", KEY, link, location, enabled)


def test_load_and_lookup(tmp_path: Path) -> None:
    """Nodes are found by id and by name, with their key as bytes and defaults filled in."""
    path = tmp_path / "nodes.toml"
    path.write_text(TWO_NODES)
    registry = Registry.load(path)
    assert len(registry) == 2 and [n.id for n in registry] == [42, 43]
    first = registry.lookup(42)
    assert first == NodeInfo(42, "HN-0042", "air-quality", KEY, "serial", "Hang Bai / Trang Tien")
    assert registry.by_name("HN-0043") == NodeInfo(43, "HN-0043", "traffic", KEY, "ble", "", False)
    assert registry.lookup(7) is None and registry.by_name("HN-0007") is None
    assert KEY.hex() not in repr(first)


def test_every_problem_reported(tmp_path: Path) -> None:
    """Duplicates, bad keys, unknown kinds and keys: all reported with key and line."""
    path = tmp_path / "nodes.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [[node]]
        id = 42
        name = "HN-0042"
        kind = "air-quality"
        key = "{KEY.hex()}"

        [[node]]
        id = 42
        name = "HN-0042"
        kind = "air-quality"
        key = "{KEY.hex()}"

        [[node]]
        id = 0
        name = "HN 7"
        kind = "weather"
        key = "abcd"
        colour = "red"

        [[node]]
        name = "HN-0009"
        kind = "traffic"
        key = "zz"
        """)
    )
    found = {p.key: (p.line, p.message) for p in check_registry(path)}
    assert found == {
        "node[1].id": (8, "42 is already used by node HN-0042 (line 2)"),
        "node[1].name": (9, "'HN-0042' is already used by node HN-0042 (line 3)"),
        "node[2].id": (14, "0 is out of range: must be between 1 and 4294967295"),
        "node[2].name": (
            15,
            "\"HN 7\" is not a name of letters, digits, '_', '-' and '.' (e.g. \"HN-0042\")",
        ),
        "node[2].kind": (16, '"weather" is not one of "air-quality", "traffic"'),
        "node[2].key": (17, "is 2 bytes: keys are 16 to 64 bytes"),
        "node[2].colour": (18, "unknown key"),
        "node[3].id": (20, "is required"),
        "node[3].key": (23, 'is not hex (two digits per byte, e.g. "00ff...")'),
    }
    with pytest.raises(RegistryError, match="9 problem"):
        Registry.load(path)


def test_a_gateway_config_given_as_the_registry_is_named_as_such() -> None:
    """`monitor --registry gateway.toml` (the config beside nodes.toml) listed 15 "unknown
    key" problems; now one sentence naming the registry the config points to."""
    example = Path(__file__).resolve().parents[2] / "gateway" / "example.toml"
    with pytest.raises(RegistryError) as refused:
        Registry.load(example)
    assert [str(p) for p in refused.value.problems] == [
        "this is a gateway config, not a node registry: give the registry it names in "
        "registry_path (nodes.toml)"]


def test_reload_picks_up_edits_and_survives_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An edit is used after reload_if_changed(); a broken edit keeps the last good nodes."""
    path = tmp_path / "nodes.toml"
    path.write_text(TWO_NODES)
    registry = Registry.load(path)
    assert not registry.reload_if_changed()
    append_node(path, node(44, "HN-0044"))
    assert registry.reload_if_changed() and registry.lookup(44) is not None
    path.write_text(TWO_NODES + "[[node]]\nid = 45\n")
    with caplog.at_level(logging.WARNING, logger="streetsense.gateway.registry"):
        assert not registry.reload_if_changed()
        assert not registry.reload_if_changed()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "node[2].name: is required" in warnings[0].getMessage()
    assert registry.lookup(44) is not None and len(registry) == 3
    path.unlink()
    assert not registry.reload_if_changed() and len(registry) == 3
    path.write_text(TWO_NODES)
    assert registry.reload_if_changed() and registry.lookup(44) is None


def test_append_creates_a_private_file(tmp_path: Path) -> None:
    """The first append creates the registry with mode 0600 and a well-formed [[node]]."""
    path = tmp_path / "nodes.toml"
    odd = 'Ngõ "Trạm" \\ 5\t\x7f'
    append_node(path, node(1, "HN-0001", location=odd, link="ble", enabled=False))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (info,) = Registry.load(path).nodes
    assert info == NodeInfo(1, "HN-0001", "air-quality", KEY, "ble", odd, False)


def test_append_keeps_the_file_and_its_mode(tmp_path: Path) -> None:
    """Appending keeps comments and earlier nodes byte for byte, and the file's mode."""
    path = tmp_path / "nodes.toml"
    path.write_text(TWO_NODES.rstrip("\n"))  # no final newline
    path.chmod(0o640)
    append_node(path, node(44, "HN-0044"))
    text = path.read_text()
    assert text.startswith(TWO_NODES) and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [n.name for n in Registry.load(path)] == ["HN-0042", "HN-0043", "HN-0044"]
    assert [p.name for p in tmp_path.iterdir()] == ["nodes.toml"]  # no temp file left


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (node(42, "HN-9999"), "node[2].id: 42 is already used by node HN-0042"),
        (node(99, "HN-0043"), "node[2].name: 'HN-0043' is already used by node HN-0043"),
        (NodeInfo(99, "HN-0099", "air-quality", b"short"), "node[2].key: is 5 bytes"),
    ],
)
def test_append_refuses_conflicts(tmp_path: Path, new: NodeInfo, message: str) -> None:
    """A duplicate id or name (or a bad field) is refused with a clear error; file unchanged."""
    path = tmp_path / "nodes.toml"
    path.write_text(TWO_NODES)
    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        append_node(path, new)
    assert path.read_text() == TWO_NODES


def test_concurrent_appends_all_land(tmp_path: Path) -> None:
    """Appends from several threads at once are serialised: every node is in the file."""
    path = tmp_path / "nodes.toml"
    start = threading.Barrier(8)

    def add(index: int) -> None:
        start.wait(timeout=10)
        append_node(path, node(100 + index, f"HN-{100 + index}"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(n.id for n in Registry.load(path)) == list(range(100, 108))


def test_rename_and_remove_edit_only_their_node(tmp_path: Path) -> None:
    """rename_node changes one name line and remove_node drops one table with the comment
    right above it: every other line of the file (comments, other nodes) stays as it was;
    a taken name or an unknown node is a RegistryError and the file is untouched."""
    from streetsense.gateway.registry import remove_node, rename_node

    path = tmp_path / "nodes.toml"
    for node_id in (42, 43, 44):
        append_node(path, NodeInfo(node_id, f"HN-{node_id:04d}", "air-quality", bytes(16)))
    before = path.read_text().splitlines()
    assert rename_node(path, "HN-0043", "HN-0099").id == 43
    renamed = path.read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, renamed, strict=True)) if a != b] == [
        before.index('name = "HN-0043"')]
    assert remove_node(path, "HN-0042").id == 42
    removed = path.read_text().splitlines()
    table = before.index("id = 42") - 2  # its "# added" comment, then [[node]]
    assert removed == renamed[:table] + renamed[table + 9:]  # the comment and 8 lines
    for call in (lambda: rename_node(path, "HN-0044", "HN-0099"),
                 lambda: remove_node(path, "HN-0001")):
        with pytest.raises(RegistryError):
            call()
    assert path.read_text().splitlines() == removed
