"""`streetsense provision` against a node on a PTY: the SPEC §6.6 exchange through the CLI."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streetsense.gateway.registry import NodeInfo, Registry, append_node
from streetsense.hil.pty import PtyPair
from streetsense.tools.provision import provision
from tests.support.fake_node import ProvisioningNode
from tests.tools.tools_helpers import Tool, wait_line

OLD_KEY = bytes(range(100, 132))


def _provision(pty: PtyPair, *args: str) -> Result:
    return CliRunner().invoke(provision, ["--port", pty.path, "--node-id", "42", "--kind",
                                          "air-quality", "--hello-timeout", "5", *args])


def _assert_no_key(output: str, key: bytes) -> None:
    """Neither the key nor a recognisable piece of it is on the screen."""
    for start in range(0, len(key) - 4):
        piece = key[start:start + 4].hex()
        assert piece not in output.lower(), f"key bytes {start}.. on the screen"


def test_factory_node_is_provisioned_registered_and_reports(pty: PtyPair, node: ProvisioningNode,
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
    _assert_no_key(result.output, entry.key)
    assert node.got_time.wait(5)  # the provisioned node gets TIME (it may follow the DATA)
    assert result.output.splitlines()[-1] == (
        f"node HN-0042 provisioned; first reading PM2.5 31.2 µg/m³; registered in {registry}")


def test_ble_node_ends_at_its_result_and_its_key_is_only_in_the_registry(
        pty: PtyPair, node: ProvisioningNode, tmp_path: Path) -> None:
    """--link ble: the tool stops at the label (the node talks Bluetooth after its reset);
    the key is in the registry file, never on the screen."""
    registry = tmp_path / "nodes.toml"
    result = _provision(pty, "--link", "ble", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    assert node.key is not None and Registry.load(registry).lookup(42).key == node.key
    _assert_no_key(result.output, node.key)
    last = result.output.splitlines()[-1]
    assert last.startswith("node node-0042 provisioned for a BLE link: after its reset it")
    assert last.endswith(f"registered in {registry}")


def test_without_registry_nothing_is_sent(pty: PtyPair, node: ProvisioningNode) -> None:
    """No --registry: a usage error saying why it is needed; the node is not touched."""
    result = CliRunner().invoke(provision, ["--port", pty.path, "--node-id", "42", "--kind",
                                            "air-quality"])
    assert result.exit_code == 2
    assert "--registry FILE is needed" in result.output and "never shown" in result.output
    assert node.configs == [] and node.key is None


def test_missing_registry_folder_is_refused_before_the_node_is_keyed(
        pty: PtyPair, node: ProvisioningNode, tmp_path: Path) -> None:
    """A registry in a folder that does not exist (a typo): exit 1 before anything is sent."""
    registry = tmp_path / "etc-streetsens" / "nodes.toml"
    result = _provision(pty, "--registry", str(registry))
    assert result.exit_code == 1
    assert f"the registry's folder {registry.parent} does not exist" in result.output
    assert "nothing was sent to the node" in result.output
    assert node.configs == [] and node.key is None and not registry.parent.exists()


def test_unwritable_registry_is_named_and_refused_before_the_node_is_keyed(
        pty: PtyPair, node: ProvisioningNode) -> None:
    """A registry where the user may not create files (/sys: not even root may) is refused
    up front, naming the user's file and folder, never a temporary file."""
    result = _provision(pty, "--registry", "/sys/nodes.toml")
    assert result.exit_code == 1
    assert "cannot write the registry /sys/nodes.toml: its folder /sys does not let you " \
           "create files" in result.output
    assert ".nodes.toml." not in result.output
    assert node.configs == [] and node.key is None


def test_mistyped_registry_name_next_to_a_registry_is_refused(
        pty: PtyPair, node: ProvisioningNode, tmp_path: Path) -> None:
    """--registry node.toml where nodes.toml is the registry: refused, naming the likely one."""
    append_node(tmp_path / "nodes.toml", NodeInfo(7, "HN-0007", "traffic", OLD_KEY))
    result = _provision(pty, "--registry", str(tmp_path / "node.toml"))
    assert result.exit_code == 1
    assert f"give --registry {tmp_path / 'nodes.toml'}" in result.output
    assert node.configs == [] and not (tmp_path / "node.toml").exists()


def test_registry_failing_after_keying_saves_the_entry_to_a_rescue_file(
        pty: PtyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry breaks while the node takes its key (here: a folder appears in its
    place): the entry goes to a private rescue file, the error says where, exit 1."""
    registry = tmp_path / "nodes.toml"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    fake = ProvisioningNode(pty.master, on_config=lambda settings: registry.mkdir())
    fake.start()
    try:
        result = _provision(pty, "--registry", str(registry))
    finally:
        fake.stop()
    assert result.exit_code == 1
    assert fake.key is not None
    rescue = next((tmp_path / "state" / "streetsense").glob("node-42-*.toml"))
    assert f"its entry is in {rescue} (readable by you only)" in result.output
    assert Registry.load(rescue).lookup(42).key == fake.key
    assert rescue.stat().st_mode & 0o777 == 0o600
    _assert_no_key(result.output, fake.key)


@pytest.mark.parametrize("node", [{"node_id": 7, "key": OLD_KEY, "kind": "air-quality"}],
                         indirect=True)
def test_provisioned_node_is_refused_with_what_to_do(pty: PtyPair, node: ProvisioningNode,
                                                     tmp_path: Path) -> None:
    """A node whose HELLO is signed is left alone; the error says how to factory-reset it."""
    result = _provision(pty, "--registry", str(tmp_path / "nodes.toml"))
    assert result.exit_code == 1
    assert "already provisioned as node 7, and its key is not in" in result.output
    assert "hold its BOOT button while powering it up" in result.output
    assert node.key == OLD_KEY and node.configs == []


@pytest.mark.parametrize("node", [{"node_id": 7, "key": OLD_KEY, "kind": "air-quality",
                                    "running": True}],
                         indirect=True)
def test_running_node_is_recognised_at_once(pty: PtyPair, node: ProvisioningNode,
        tmp_path: Path) -> None:
    """A provisioned node that said its HELLO long ago (it only resends its DATA) is named
    as provisioned at its first frame, not after the HELLO wait runs out."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(7, "HN-0007", "air-quality", OLD_KEY))
    result = _provision(pty, "--registry", str(registry), "--hello-timeout", "60")
    assert result.exit_code == 1
    assert f"the node on {pty.path} is already provisioned: node 7 (HN-0007 in" in result.output
    assert node.key == OLD_KEY and node.configs == []
    reset = _provision(pty, "--registry", str(registry), "--factory-reset")
    assert reset.exit_code == 0, reset.output
    assert node.node_id == 42 and node.key == Registry.load(registry).lookup(42).key


@pytest.mark.parametrize("node", [{"kind": "traffic"}], indirect=True)
def test_board_of_another_kind_is_refused(pty: PtyPair, node: ProvisioningNode,
        tmp_path: Path) -> None:
    """A factory node whose HELLO says traffic is not provisioned as air-quality."""
    result = _provision(pty, "--registry", str(tmp_path / "nodes.toml"))
    assert result.exit_code == 1
    assert f"the node on {pty.path} is a traffic node (its HELLO says so), not air-quality: " \
           "check that it is the board you meant and give --kind traffic" in result.output
    assert node.configs == [] and node.key is None


@pytest.mark.parametrize("node", [{"kind": "traffic"}], indirect=True)
def test_board_refused_for_its_kind_is_then_provisioned_with_the_kind_it_names(
        pty: PtyPair, node: ProvisioningNode, tmp_path: Path) -> None:
    """The refusal sends nothing, not even the ACK of the HELLO: the node keeps saying it,
    so the run with the --kind the error names finds it (an acked factory node said nothing
    more, and that run ended in 'nothing came from a node')."""
    registry = tmp_path / "nodes.toml"
    refused = _provision(pty, "--registry", str(registry))
    assert refused.exit_code == 1 and "give --kind traffic" in refused.output
    assert node.seq == 0  # its HELLO is still unacked
    result = CliRunner().invoke(provision, [
        "--port", pty.path, "--node-id", "42", "--kind", "traffic", "--hello-timeout", "5",
        "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    assert Registry.load(registry).lookup(42).kind == "traffic"


@pytest.mark.parametrize("node", [{"node_id": 7, "key": OLD_KEY, "kind": "traffic"}], indirect=True)
def test_registered_node_of_another_kind_is_not_wiped(pty: PtyPair, node: ProvisioningNode,
                                                      tmp_path: Path) -> None:
    """--factory-reset of a node registered as traffic with --kind air-quality: refused
    before the signed wipe, so the node keeps working."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(7, "HN-0007", "traffic", OLD_KEY))
    result = _provision(pty, "--registry", str(registry), "--factory-reset")
    assert result.exit_code == 1
    assert "is a traffic node (HN-0007 in" in result.output
    assert node.node_id == 7 and node.key == OLD_KEY


@pytest.mark.parametrize("node", [{"node_id": 7, "key": OLD_KEY, "kind": "air-quality"}],
                         indirect=True)
def test_factory_reset_with_registry_key_then_provision(pty: PtyPair, node: ProvisioningNode,
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
def test_refused_settings_are_reported(pty: PtyPair, node: ProvisioningNode,
        tmp_path: Path) -> None:
    """A RESULT BAD_ARGS stops provisioning with the node's reason; nothing is registered."""
    registry = tmp_path / "nodes.toml"
    result = _provision(pty, "--registry", str(registry))
    assert result.exit_code == 1
    assert "the node refused the settings: kind: unknown" in result.output
    assert not registry.exists()


@pytest.mark.parametrize("node", [{"silent": True}], indirect=True)
def test_silent_node_gives_an_error_naming_port_and_wiring(pty: PtyPair, node: ProvisioningNode,
                                                          tmp_path: Path) -> None:
    """Nothing within --hello-timeout: an error naming the port, the wiring and the EN button."""
    result = CliRunner().invoke(provision, ["--port", pty.path, "--node-id", "42", "--kind",
                                            "traffic", "--hello-timeout", "0.5",
                                            "--registry", str(tmp_path / "nodes.toml")])
    assert result.exit_code == 1
    assert f"nothing came from a node on {pty.path} within 0.5 s" in result.output
    assert "EN button" in result.output


def test_taken_id_is_refused_before_the_node_is_touched(pty: PtyPair, node: ProvisioningNode,
                                                        tmp_path: Path) -> None:
    """An id already in the registry is refused up front; the node stays in factory state."""
    registry = tmp_path / "nodes.toml"
    append_node(registry, NodeInfo(42, "HN-0042", "traffic", OLD_KEY))
    result = _provision(pty, "--registry", str(registry))
    assert result.exit_code == 1 and "nothing was sent to the node" in result.output
    assert node.configs == [] and node.key is None


def _interrupted(tool: Tool, pty: PtyPair, registry: Path, wait_for: str) -> tuple[int, str]:
    """Run provision as a process, press Ctrl-C (SIGINT) once ``wait_for`` is printed."""
    proc = tool("provision", "--port", pty.path, "--node-id", "42", "--kind", "air-quality",
                "--registry", str(registry), "--name", "HN-0042")
    while wait_for not in (line := wait_line(proc, 20, stdout=True)):
        assert "Error" not in line, line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out + err


@pytest.mark.parametrize("node", [{"silent": True}], indirect=True)
def test_ctrl_c_before_anything_was_sent(tool: Tool, pty: PtyPair, node: ProvisioningNode,
                                         tmp_path: Path) -> None:
    """Ctrl-C while waiting for the node: says node and registry are unchanged; status 130."""
    registry = tmp_path / "nodes.toml"
    status, output = _interrupted(tool, pty, registry, "waiting for the node")
    assert status == 130, output
    assert f"stopped before anything was sent to the node: the node and {registry} are " \
           "unchanged." in output
    assert "Aborted!" not in output and "Traceback" not in output


@pytest.mark.parametrize("node", [{"reboots": False}], indirect=True)
def test_ctrl_c_after_registering_says_so(tool: Tool, pty: PtyPair, node: ProvisioningNode,
                                          tmp_path: Path) -> None:
    """Ctrl-C while waiting for the node's restart: it is provisioned and registered, and
    the message says so (not a bare "Aborted!")."""
    registry = tmp_path / "nodes.toml"
    status, output = _interrupted(tool, pty, registry, "LABEL")
    assert status == 130, output
    assert f"stopped after node 42 (HN-0042) was provisioned and registered in {registry}: " \
           "nothing to redo." in output
    assert Registry.load(registry).lookup(42).key == node.key
    assert "Aborted!" not in output
