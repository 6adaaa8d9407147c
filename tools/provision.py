"""The ``provision`` command: give a factory-state node its id, key and kind (SPEC §6.6).

The exchange, as the tool sees it on the node's link port:

1. wait for the node's HELLO; a factory node sends it unsigned, as node 0, with the
   capability ``factory``; ACK it (unsigned, to node 0);
2. generate a 32-byte key and send an unsigned CONFIG (node 0, the node's boot, downlink
   seq 1, 2, ... on resends) with ``node_id``, ``key``, ``kind``, ``link``;
3. the node answers RESULT OK signed with the new key and with its new id in the header:
   verify it, ACK it (the node waits for that ACK before it resets), register the node;
4. after its reset the node says HELLO signed with the new key: ACK it and send TIME
   (a node provisioned for a BLE link says it over BLE instead: the tool stops at 3);
5. wait for the first DATA and print it in plain words; it is not acked, so the node keeps
   it until its gateway has it.

A node that is already provisioned is refused, unless ``--factory-reset`` is given and
the registry holds its key: then a signed COMMAND ``factory_reset`` wipes it first.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from streetsense.gateway.registry import (
    KINDS,
    LINKS,
    NodeInfo,
    Registry,
    RegistryError,
    append_node,
)
from streetsense.gateway.registry import _entry as toml_entry
from streetsense.protocol import Frame, ProtocolError, parse_frame, peek_node_id
from streetsense.protocol import messages as m

from .describe import fingerprint, frame_summary, readings_text
from .serialport import DEFAULT_BAUD, FrameLink, open_port

__all__ = ["NodeSession", "ProvisionError", "provision"]

KEY_BYTES = 32  # SPEC §2: provisioning generates 32 random bytes
RESEND_S = 3.0  # a CONFIG/COMMAND without an answer is sent again (new seq) this often
ANSWER_TIMEOUT_S = 15.0  # how long a node may take to answer a CONFIG/COMMAND
RESTART_TIMEOUT_S = 30.0  # from the ACK of the RESULT to the HELLO after the reset


class ProvisionError(click.ClickException):
    """The node did not go through provisioning; the message says what to do."""


class NodeSession:
    """The tool's half of the exchange: frames in (acked when they ask), downlinks out."""

    def __init__(self, link: FrameLink) -> None:
        self.link = link
        self.keys: dict[int, bytes] = {}  # node id -> key, for the frames we can verify
        self.node_id = 0  # the node downlinks go to
        self.boot = 0  # its current boot (from its latest HELLO)
        self._downlink_seq = 0  # last downlink seq sent in that boot

    def next_frame(self, deadline: float) -> Frame | None:
        """The next frame that parses (bad frames are skipped), or None at ``deadline``."""
        while (left := deadline - time.monotonic()) > 0:
            item = self.link.read(left)
            if not isinstance(item, bytes):
                continue
            try:
                node_id = peek_node_id(item)
                return parse_frame(item, None if node_id is None else self.keys.get(node_id))
            except ProtocolError:
                continue
        return None

    def ack(self, frame: Frame) -> None:
        """ACK what the node would otherwise resend: frames verified with a key we hold
        (the node being provisioned), and a factory node's unsigned frames."""
        if frame.ack_requested and (frame.verified
                                    or (frame.node_id == 0 and not frame.signed)):
            self.link.ack(frame, self.keys.get(frame.node_id))

    def expect(self, match: Callable[[Frame], bool], timeout_s: float,
               resend: Callable[[], None] | None = None, *,
               ack_match: bool = True) -> Frame | None:
        """The first frame for which ``match`` is true; ``resend`` runs every ``RESEND_S``.

        Frames are acked as they come, the matching one only with ``ack_match``.
        """
        deadline = time.monotonic() + timeout_s
        next_resend = time.monotonic()
        while (now := time.monotonic()) < deadline:
            if resend is not None and now >= next_resend:
                resend()
                next_resend = now + RESEND_S
            frame = self.next_frame(min(deadline, next_resend) if resend else deadline)
            if frame is None:
                continue
            found = match(frame)
            if ack_match or not found:
                self.ack(frame)
            if found:
                return frame
        return None

    def target(self, node_id: int, boot: int) -> None:
        """Address downlinks to ``node_id`` in ``boot`` (downlink seq restarts at 1)."""
        if (node_id, boot) != (self.node_id, self.boot):
            self.node_id, self.boot, self._downlink_seq = node_id, boot, 0

    def send(self, mtype: int, body: dict[int, Any]) -> None:
        """A downlink to the target, signed when its key is known (SPEC §6.4)."""
        self._downlink_seq += 1
        frame = Frame(mtype, self.node_id, self.boot, self._downlink_seq, body)
        self.link.send(frame.encode(self.keys.get(self.node_id)))


def _is_result(node_id: int, request: int) -> Callable[[Frame], bool]:
    """The RESULT for ``request``: signed by ``node_id``, or (a refusal) by the factory node."""
    return lambda f: (f.type == m.RESULT and f.body[1] == request
                      and ((f.verified and f.node_id == node_id)
                           or (f.node_id == 0 and not f.signed)))


def _answer(session: NodeSession, mtype: int, body: dict[int, Any],
            answer_from: int) -> Frame | None:
    """Send a CONFIG/COMMAND (again every RESEND_S) until ``answer_from`` signs its RESULT."""
    return session.expect(_is_result(answer_from, body[1]), ANSWER_TIMEOUT_S,
                          resend=lambda: session.send(mtype, body))


def _no_hello(port: str, timeout_s: float, after: str = "") -> ProvisionError:
    return ProvisionError(
        f"the node never said HELLO on {port}{after} within {timeout_s:g} s: check that {port} "
        f"is the node's link (the serial adapter on its TX 17/RX 16, or the gateway's cable), "
        f"that the node is powered and was flashed (streetsense flash). Pressing its EN button "
        f"restarts it, and it says HELLO at once.")


def load_registry(path: Path | None) -> Registry | None:
    """The registry at ``path`` (None without one, or while the file does not exist yet)."""
    if path is None or not path.exists():
        return None
    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise ProvisionError(f"{exc}\nFix the registry first; nothing was sent to the node.") \
            from None


def check_entry(path: Path | None, node: NodeInfo) -> None:
    """Refuse, before the node is touched, an entry the registry would refuse after it."""
    with tempfile.TemporaryDirectory(prefix="streetsense-provision-") as scratch:
        trial = Path(scratch) / "nodes.toml"
        if path is not None and path.exists():
            shutil.copyfile(path, trial)
        try:
            append_node(trial, node)
        except RegistryError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            raise ProvisionError(f"the registry entry would be refused ({problems}): "
                                 f"choose another --node-id/--name; nothing was sent to "
                                 f"the node.") from None


def _factory_reset(session: NodeSession, hello: Frame, known: NodeInfo) -> None:
    """Wipe a provisioned node whose key the registry holds, with a signed COMMAND."""
    session.keys[hello.node_id] = known.key
    session.target(hello.node_id, hello.boot)
    request = secrets.randbelow(1 << 30) + 1
    click.echo(f"factory-resetting node {hello.node_id} ({known.name}) with a signed command")
    result = _answer(session, m.COMMAND, {1: request, 2: "factory_reset"}, hello.node_id)
    if result is None or result.body[2] != m.RESULT_OK:
        raise ProvisionError(f"node {hello.node_id} did not accept factory_reset: hold its BOOT "
                             f"button while powering it up to factory-reset it by hand.")


def _registered(hello: Frame, registry: Registry | None, factory_reset: bool) -> NodeInfo:
    """The registry entry of an already provisioned node, if it may be factory-reset."""
    known = registry.lookup(hello.node_id) if registry is not None else None
    if registry is None or known is None:
        unknown = (f"its key is not in {registry.path}" if registry is not None
                   else "no --registry with its key was given")
        raise ProvisionError(
            f"the node on this port is already provisioned as node {hello.node_id}, and "
            f"{unknown}. Factory-reset it first: hold its BOOT button while powering it up; "
            f"then run provision again. (With the gateway's registry that holds its key, "
            f"--registry FILE --factory-reset does this with a signed command.)")
    if not factory_reset:
        raise ProvisionError(
            f"the node on this port is already provisioned: node {hello.node_id} ({known.name} in "
            f"{registry.path}). To provision it anew, run again with --factory-reset (its key "
            f"and id are wiped with a signed command).")
    if not hello.verified:
        raise ProvisionError(f"node {hello.node_id} says HELLO with a tag that does not match "
                             f"its key in {registry.path}: it is not the node registered there. "
                             f"Factory-reset it by hand (hold BOOT while powering it up).")
    return known


@click.command()
@click.option("--port", required=True, help="The node's link port (serial adapter or cable).")
@click.option("--node-id", required=True, type=click.IntRange(1, 0xFFFFFFFF),
              help="The id the gateway will know the node by.")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What the node measures.")
@click.option("--link", default="serial", show_default=True, type=click.Choice(LINKS),
              help="How the node reaches its gateway after provisioning.")
@click.option("--registry", type=click.Path(dir_okay=False, path_type=Path),
              help="The gateway's registry file (nodes.toml) to add the node to.")
@click.option("--name", help="Name on MQTT and the label. Default: node-<id, 4 digits>.")
@click.option("--location", default="", help="Where the node is mounted (for the registry).")
@click.option("--factory-reset", is_flag=True,
              help="If the node is already provisioned and its key is in --registry, wipe it "
              "with a signed command first.")
@click.option("--baud", default=DEFAULT_BAUD, show_default=True, help="Link baud rate.")
@click.option("--hello-timeout", default=45.0, show_default=True,
              help="Seconds to wait for the node's first HELLO.")
@click.option("--data-timeout", default=120.0, show_default=True,
              help="Seconds to wait for the first reading (sensors warm up first).")
def provision(port: str, node_id: int, kind: str, link: str, registry: Path | None,
              name: str | None, location: str, factory_reset: bool, baud: int,
              hello_timeout: float, data_timeout: float) -> None:
    """Provision the factory-state node on PORT: id, key, kind; register it; label line."""
    registry_now = load_registry(registry)
    name = name or f"node-{node_id:04d}"
    check_entry(registry, NodeInfo(node_id, name, kind, bytes(KEY_BYTES), link, location))
    with open_port(port, baud=baud) as serial_port:
        session = NodeSession(FrameLink(serial_port))
        if factory_reset and registry_now is not None:
            session.keys = {node.id: node.key for node in registry_now.nodes}
        click.echo(f"waiting for the node's HELLO on {port} (up to {hello_timeout:g} s)")
        hello = session.expect(lambda f: f.type == m.HELLO, hello_timeout)
        if hello is None:
            raise _no_hello(port, hello_timeout)
        if hello.node_id != 0 or hello.signed:
            _factory_reset(session, hello, _registered(hello, registry_now, factory_reset))
            hello = session.expect(lambda f: f.type == m.HELLO and f.node_id == 0,
                                   RESTART_TIMEOUT_S)
            if hello is None:
                raise _no_hello(port, RESTART_TIMEOUT_S, " after its factory reset")
        click.echo(f"factory-state node: {frame_summary(m.HELLO, hello.body)}")

        key = secrets.token_bytes(KEY_BYTES)
        session.keys[node_id] = key
        session.target(0, hello.boot)
        request = secrets.randbelow(1 << 30) + 1
        settings = {"node_id": node_id, "key": key.hex(), "kind": kind, "link": link}
        click.echo(f"sending its identity: node {node_id}, {kind}, {link} link")
        result = _answer(session, m.CONFIG, {1: request, 2: settings}, node_id)
        if result is None:
            raise ProvisionError(f"the node did not answer the provisioning CONFIG within "
                                 f"{ANSWER_TIMEOUT_S:g} s: restart it (EN button) and run "
                                 f"provision again.")
        if result.body[2] != m.RESULT_OK:
            raise ProvisionError(f"the node refused the settings: {result.body.get(3, '')}")
        if not result.verified:
            raise ProvisionError("the node answered OK without signing with its new key: its "
                                 "firmware does not follow SPEC §6.6; flash it again.")
        click.echo(f"the node is now node {node_id}: its answer is signed with the new key")
        registered = _register(registry, NodeInfo(node_id, name, kind, key, link, location))
        click.echo(f"LABEL  {name}  id {node_id}  {kind}  key fingerprint {fingerprint(key)}")
        if link == "ble":  # after its reset the node talks over Bluetooth, not this port
            click.echo(f"node {name} provisioned for a BLE link: after its reset it talks to "
                       f"its gateway over Bluetooth, where its readings show up; {registered}")
            return

        rebooted = session.expect(lambda f: (f.type == m.HELLO and f.node_id == node_id
                                             and f.verified and f.boot != result.boot),
                                  RESTART_TIMEOUT_S)
        if rebooted is None:
            raise _no_hello(port, RESTART_TIMEOUT_S, f" as node {node_id} after its reset")
        session.target(node_id, rebooted.boot)
        session.send(m.TIME, {1: time.time_ns() // 1_000_000})
        click.echo(f"node {node_id} restarted (boot {rebooted.boot}) and proved its key; "
                   f"clock set. Waiting up to {data_timeout:g} s for its first reading")
        # The reading stays unacked: the node keeps it until its gateway has it.
        data = session.expect(lambda f: (f.type == m.DATA and f.node_id == node_id
                                         and f.verified), data_timeout, ack_match=False)
        if data is None:
            raise ProvisionError(f"node {name} is provisioned ({registered}) but sent no "
                                 f"reading within {data_timeout:g} s: check its sensors with "
                                 f"`streetsense monitor {port}`.")
    click.echo(f"node {name} provisioned; first reading "
               f"{readings_text(data.body[4], brief=True)}; {registered}")


def _register(registry: Path | None, node: NodeInfo) -> str:
    """Add the node to the registry (or print the entry to add); says where it went."""
    if registry is not None:
        try:
            append_node(registry, node)
            return f"registered in {registry}"
        except (RegistryError, OSError) as exc:
            click.echo(f"could not add the node to {registry}: {exc}", err=True)
    click.echo("add this entry to the gateway's registry file (nodes.toml):\n"
               + toml_entry(node))
    return "not registered: add the entry printed above to the gateway's registry"
