"""`streetsense provision` against a node on a PTY: the SPEC §6.6 exchange through the CLI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_node import FakeNode
from tools_helpers import Pty

from streetsense.gateway.registry import NodeInfo, Registry, append_node
from streetsense.tools.provision import provision

OLD_KEY = bytes(range(100, 132))


def _provision(pty: Pty, *args: str) -> Result:
    return CliRunner().invoke(provision, ["--port", pty.path, "--node-id", "42", "--kind",
                                          "air-quality", "--hello-timeout", "5", *args])


def test_factory_node_is_provisioned_registered_and_reports(pty: Pty, node: FakeNode,
                                                            tmp_path: Path) -> None:
    """Key sent once, RESULT verified, node in the registry, label with fingerprint, reading."""
    registry = tmp_path / "nodes.toml"
    result = _provision(pty, "--registry", str(registry), "--name", "HN-0042",
                        "--location", "Hoan Kiem pole 17")
    assert result.exit_code == 0, result.output
    entry = Registry.load(registry).lookup(42)
    assert entry is not None and (entry.name, entry.kind, entry.link) == (
        "HN-0042", "air-quality", "serial")
    assert node.key == entry.key and len(entry.key) == 32 and node.node_id == 42
    assert node.configs[0]["kind"] == "air-quality"
    fingerprint = hashlib.sha256(entry.key).hexdigest()[:8]
    assert f"LABEL  HN-0042  id 42  air-quality  key fingerprint {fingerprint}" in result.output
    assert entry.key.hex() not in result.output  # the key never reaches the screen
    assert node.got_time.wait(5)  # the provisioned node gets TIME (it may follow the DATA)
    assert result.output.splitlines()[-1] == (
        f"node HN-0042 provisioned; first reading PM2.5 31.2 µg/m³; registered in {registry}")


def test_without_registry_the_exact_entry_is_printed(pty: Pty, node: FakeNode) -> None:
    """No --registry: the [[node]] table to paste, with the key; a BLE node ends at its RESULT."""
    result = _provision(pty, "--link", "ble")
    assert result.exit_code == 0, result.output
    assert node.key is not None
    table = re.search(r"\[\[node\]\]\n(.*\n){6}", result.output)
    assert table is not None
    assert f'key = "{node.key.hex()}"' in table.group(0)
    assert 'name = "node-0042"' in table.group(0) and 'link = "ble"' in table.group(0)
    last = result.output.splitlines()[-1]
    assert last.startswith("node node-0042 provisioned for a BLE link: after its reset it")
    assert last.endswith("not registered: add the entry printed above to the gateway's registry")


@pytest.mark.parametrize("node", [{"node_id": 7, "key": OLD_KEY}], indirect=True)
def test_provisioned_node_is_refused_with_what_to_do(pty: Pty, node: FakeNode) -> None:
    """A node whose HELLO is signed is left alone; the error says how to factory-reset it."""
    result = _provision(pty)
    assert result.exit_code == 1
    assert "already provisioned as node 7" in result.output
    assert "hold its BOOT button while powering it up" in result.output
    assert node.key == OLD_KEY and node.configs == []


@pytest.mark.parametrize("node", [{"node_id": 7, "key": OLD_KEY}], indirect=True)
def test_factory_reset_with_registry_key_then_provision(pty: Pty, node: FakeNode,
                                                        tmp_path: Path) -> None:
    """--factory-reset wipes a registered node with a signed COMMAND, then provisions it."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(7, "HN-0007", "air-quality", OLD_KEY))
    refused = _provision(pty, "--registry", str(registry))
    assert refused.exit_code == 1 and "run again with --factory-reset" in refused.output
    result = _provision(pty, "--registry", str(registry), "--factory-reset")
    assert result.exit_code == 0, result.output
    assert "factory-resetting node 7 (HN-0007)" in result.output
    assert node.node_id == 42 and node.key == Registry.load(registry).lookup(42).key


@pytest.mark.parametrize("node", [{"refuse": "kind: unknown"}], indirect=True)
def test_refused_settings_are_reported(pty: Pty, node: FakeNode, tmp_path: Path) -> None:
    """A RESULT BAD_ARGS stops provisioning with the node's reason; nothing is registered."""
    registry = tmp_path / "nodes.toml"
    result = _provision(pty, "--registry", str(registry))
    assert result.exit_code == 1
    assert "the node refused the settings: kind: unknown" in result.output
    assert not registry.exists()


@pytest.mark.parametrize("node", [{"silent": True}], indirect=True)
def test_silent_node_gives_a_hello_error(pty: Pty, node: FakeNode) -> None:
    """No HELLO within --hello-timeout: an error naming the port, the wiring and the EN button."""
    result = CliRunner().invoke(provision, ["--port", pty.path, "--node-id", "42", "--kind",
                                            "traffic", "--hello-timeout", "0.5"])
    assert result.exit_code == 1
    assert f"the node never said HELLO on {pty.path} within 0.5 s" in result.output
    assert "EN button" in result.output


def test_taken_id_is_refused_before_the_node_is_touched(pty: Pty, node: FakeNode,
                                                        tmp_path: Path) -> None:
    """An id already in the registry is refused up front; the node stays in factory state."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(42, "HN-0042", "traffic", OLD_KEY))
    result = _provision(pty, "--registry", str(registry))
    assert result.exit_code == 1 and "nothing was sent to the node" in result.output
    assert node.configs == [] and node.key is None
