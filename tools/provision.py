"""The ``provision`` command: give a factory-state node its id, key and kind (SPEC §6.6).

Before the node is touched, the registry file is checked (`provision_registry`): its folder
exists, you may write it, the id and name are free. The key then goes into that file and
never onto the screen. The exchange, as the tool sees it on the node's link port:

1. wait for the node's first frame. A factory node says HELLO unsigned, as node 0, with
   the capability ``factory`` and the kind it was built as (if any: a kind other than
   ``--kind`` is refused); ACK it (unsigned, to node 0). A provisioned node (any frame
   signed, or not from node 0) is refused at once, unless ``--factory-reset`` is given and
   the registry holds its key: then a signed COMMAND ``factory_reset`` wipes it first;
2. generate a 32-byte key and send an unsigned CONFIG (node 0, the node's boot, downlink
   seq 1, 2, ... on resends) with ``node_id``, ``key``, ``kind``, ``link``;
3. the node answers RESULT OK signed with the new key and with its new id in the header:
   verify it, ACK it (the node waits for that ACK before it resets), register the node;
4. after its reset the node says HELLO signed with the new key: ACK it and send TIME
   (a node provisioned for a BLE link says it over BLE instead: the tool stops at 3);
5. wait for the first DATA and print it in plain words; it is not acked, so the node keeps
   it until its gateway has it.

Ctrl-C says how far it got: what state the node and the registry are in.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from streetsense.gateway.registry import KINDS, LINKS, NodeInfo, Registry
from streetsense.protocol import Frame, ProtocolError, names, parse_frame, peek_node_id
from streetsense.protocol import messages as m

from .describe import fingerprint, frame_summary, readings_text
from .provision_registry import NOTHING_SENT, check_entry, check_registry_path, register
from .serialport import DEFAULT_BAUD, FrameLink, open_port

__all__ = ["NodeSession", "ProvisionError", "Provisioning", "provision"]

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
            if frame.verified and frame.node_id == self.node_id and frame.boot > self.boot:
                self.target(frame.node_id, frame.boot)  # a later boot: downlinks follow it
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
    return lambda f: (f.type == m.RESULT and f.body[names.RESULT_REQUEST] == request
                      and ((f.verified and f.node_id == node_id)
                           or (f.node_id == 0 and not f.signed)))


def _answer(session: NodeSession, mtype: int, body: dict[int, Any],
            answer_from: int) -> Frame | None:
    """Send a CONFIG/COMMAND (again every RESEND_S) until ``answer_from`` signs its RESULT."""
    request = body[names.COMMAND_REQUEST]  # CONFIG_REQUEST is the same key
    return session.expect(_is_result(answer_from, request), ANSWER_TIMEOUT_S,
                          resend=lambda: session.send(mtype, body))


def _no_frame(port: str, timeout_s: float, after: str = "") -> ProvisionError:
    return ProvisionError(
        f"nothing came from a node on {port}{after} within {timeout_s:g} s: check that {port} "
        f"is the node's link (the serial adapter on its TX 17/RX 16, or the gateway's cable), "
        f"that the node is powered and was flashed (streetsense flash). Pressing its EN button "
        f"restarts it, and it says HELLO at once.")


def _from_a_node(frame: Frame) -> bool:
    """An uplink that says what is on the port: a factory HELLO, or any provisioned node's."""
    return frame.type not in m.DOWNLINK_TYPES and (
        frame.type == m.HELLO or frame.node_id != 0 or frame.signed)


def _kind_refusal(port: str, claimed: str, kind: str, how: str) -> ProvisionError:
    return ProvisionError(
        f"the node on {port} is {'an' if claimed[0] in 'aeiou' else 'a'} {claimed} node "
        f"({how}), not {kind}: check that it is the board you meant and give --kind "
        f"{claimed}. (A board rewired for another kind is "
        f"flashed again first: flashing erases what it was.) {NOTHING_SENT.capitalize()}.")


class Stopped(click.ClickException):
    """Ctrl-C: what state the node and the registry were left in."""

    exit_code = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


@dataclass
class Provisioning:
    """One run of the exchange; ``stage`` says how far it got (for Ctrl-C)."""

    port: str
    registry: Path
    node: NodeInfo  # the entry to register (its key is set once generated)
    stage: str = "waiting"  # waiting | factory-reset | sent | registered
    old_id: int = 0  # the node's id before a factory reset

    def stopped(self) -> Stopped:
        """The Ctrl-C message for the stage reached."""
        node, registry = self.node, self.registry
        text = {
            "waiting": f"stopped before anything was sent to the node: the node and {registry} "
                       f"are unchanged.",
            "factory-reset": f"stopped while factory-resetting node {self.old_id}: it may be "
                             f"wiped or still be node {self.old_id}; {registry} is unchanged. "
                             f"Run provision again (with --factory-reset if it still answers "
                             f"as node {self.old_id}).",
            "sent": f"stopped after the node was sent its new identity (node {node.id}) but "
                    f"before it confirmed it: {registry} is unchanged, and the node may now "
                    f"hold a key nobody has. Factory-reset it (hold BOOT while powering it "
                    f"up), then run provision again.",
            "registered": f"stopped after node {node.id} ({node.name}) was provisioned and "
                          f"registered in {registry}: nothing to redo. Check it with "
                          f"`streetsense monitor {self.port} --registry {registry}`.",
        }[self.stage]
        return Stopped(text)

    def run(self, session: NodeSession, known: Registry | None, *, factory_reset: bool,
            hello_timeout: float, data_timeout: float) -> None:
        """The exchange, from the node's first frame to its first reading."""
        node = self.node
        click.echo(f"waiting for the node on {self.port} (up to {hello_timeout:g} s)")
        first = session.expect(_from_a_node, hello_timeout, ack_match=False)
        if first is None:
            raise _no_frame(self.port, hello_timeout)
        if first.node_id != 0 or first.signed:
            self._factory_reset(session, first, known, factory_reset)
            hello = session.expect(lambda f: f.type == m.HELLO and f.node_id == 0,
                                   RESTART_TIMEOUT_S)
            if hello is None:
                raise _no_frame(self.port, RESTART_TIMEOUT_S, " after its factory reset")
        else:
            hello = first
            claimed = hello.body[names.HELLO_KIND]
            if claimed in KINDS and claimed != node.kind:  # refused unacked: it keeps saying HELLO
                raise _kind_refusal(self.port, claimed, node.kind, "its HELLO says so")
            session.ack(hello)
        click.echo(f"factory-state node: {frame_summary(m.HELLO, hello.body)}")

        key = secrets.token_bytes(KEY_BYTES)
        self.node = node = replace(node, key=key)
        session.keys[node.id] = key
        session.target(0, hello.boot)
        request = secrets.randbelow(1 << 30) + 1
        settings = {"node_id": node.id, "key": key.hex(), "kind": node.kind, "link": node.link}
        click.echo(f"sending its identity: node {node.id}, {node.kind}, {node.link} link")
        self.stage = "sent"
        result = _answer(session, m.CONFIG, {names.CONFIG_REQUEST: request,
                                                names.CONFIG_SETTINGS: settings}, node.id)
        if result is None:
            raise ProvisionError(f"the node did not answer the provisioning CONFIG within "
                                 f"{ANSWER_TIMEOUT_S:g} s, so it may or may not hold its new "
                                 f"key; {self.registry} is unchanged. Restart it (EN button) "
                                 f"and run provision again; if it then says it is already "
                                 f"provisioned, factory-reset it by hand (hold BOOT while "
                                 f"powering it up) first.")
        if result.body[names.RESULT_CODE] != m.RESULT_OK:
            self.stage = "waiting"  # it refused: still in factory state, nothing stored
            reason = result.body.get(names.RESULT_MESSAGE, "")
            raise ProvisionError(f"the node refused the settings: {reason}")
        if not result.verified:
            raise ProvisionError("the node answered OK without signing with its new key: its "
                                 "firmware does not follow SPEC §6.6; flash it again.")
        click.echo(f"the node is now node {node.id}: its answer is signed with the new key")
        # Ctrl-C waits until the key is on disk: the stage then says so.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            register(self.registry, node)
            self.stage = "registered"
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        registered = f"registered in {self.registry}"
        click.echo(f"LABEL  {node.name}  id {node.id}  {node.kind}  "
                   f"key fingerprint {fingerprint(key)}")
        if node.link == "ble":  # after its reset the node talks over Bluetooth, not this port
            click.echo(f"node {node.name} provisioned for a BLE link: after its reset it talks "
                       f"to its gateway over Bluetooth, where its readings show up; "
                       f"{registered}")
            return

        rebooted = session.expect(lambda f: (f.type == m.HELLO and f.node_id == node.id
                                             and f.verified and f.boot != result.boot),
                                  RESTART_TIMEOUT_S)
        if rebooted is None:
            raise _no_frame(self.port, RESTART_TIMEOUT_S, f" as node {node.id} after its reset")
        session.target(node.id, rebooted.boot)
        session.send(m.TIME, {names.TIME_UTC_MS: time.time_ns() // 1_000_000})
        click.echo(f"node {node.id} restarted (boot {rebooted.boot}) and proved its key; "
                   f"clock set. Waiting up to {data_timeout:g} s for its first reading")
        # The reading stays unacked: the node keeps it until its gateway has it.
        data = session.expect(lambda f: (f.type == m.DATA and f.node_id == node.id
                                         and f.verified), data_timeout, ack_match=False)
        if data is None:
            raise ProvisionError(f"node {node.name} is provisioned ({registered}) but sent no "
                                 f"reading within {data_timeout:g} s: check its sensors with "
                                 f"`streetsense monitor {self.port}`.")
        click.echo(f"node {node.name} provisioned; first reading "
                   f"{readings_text(data.body[names.DATA_READINGS], brief=True)}; {registered}")

    def _factory_reset(self, session: NodeSession, first: Frame, registry: Registry | None,
                       allowed: bool) -> None:
        """Wipe a provisioned node whose key the registry holds, with a signed COMMAND;
        anything else is refused with what to do."""
        known = registry.lookup(first.node_id) if registry is not None else None
        if known is None:
            raise ProvisionError(
                f"the node on {self.port} is already provisioned as node {first.node_id}, and "
                f"its key is not in {self.registry}. Factory-reset it first: hold its BOOT "
                f"button while powering it up; then run provision again. (With the registry "
                f"that holds its key, --registry FILE --factory-reset does this with a signed "
                f"command.)")
        if not allowed:
            raise ProvisionError(
                f"the node on {self.port} is already provisioned: node {first.node_id} "
                f"({known.name} in {self.registry}). To provision it anew, run again with "
                f"--factory-reset (its key and id are wiped with a signed command).")
        if known.kind != self.node.kind:
            raise _kind_refusal(self.port, known.kind, self.node.kind, f"{known.name} in "
                                f"{self.registry}")
        session.keys[first.node_id] = known.key
        if not first.verified:  # checked with the registry's keys (--factory-reset)
            raise ProvisionError(
                f"node {first.node_id} on {self.port} signs with a key that is not its key in "
                f"{self.registry}: it is not the node registered there. Factory-reset it by "
                f"hand (hold BOOT while powering it up); {NOTHING_SENT}.")
        self.stage, self.old_id = "factory-reset", first.node_id
        session.target(first.node_id, first.boot)
        request = secrets.randbelow(1 << 30) + 1
        click.echo(f"factory-resetting node {first.node_id} ({known.name}) with a signed "
                   f"command")
        result = _answer(session, m.COMMAND, {names.COMMAND_REQUEST: request,
                                                 names.COMMAND_NAME: "factory_reset"},
                         first.node_id)
        if result is None or result.body[names.RESULT_CODE] != m.RESULT_OK:
            raise ProvisionError(f"node {first.node_id} did not accept factory_reset: hold its "
                                 f"BOOT button while powering it up to factory-reset it by "
                                 f"hand.")
        self.stage = "waiting"


NEED_REGISTRY = ("--registry FILE is needed: the gateway's registry (nodes.toml), or a file of "
                 "your own to copy into it later. The node's key is written there and never "
                 "shown.")


@click.command()
@click.option("--port", required=True, help="The node's link port (serial adapter or cable).")
@click.option("--node-id", required=True, type=click.IntRange(1, 0xFFFFFFFF),
              help="The id the gateway will know the node by.")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What the node measures.")
@click.option("--link", default="serial", show_default=True, type=click.Choice(LINKS),
              help="How the node reaches its gateway after provisioning.")
@click.option("--registry", type=click.Path(dir_okay=False, path_type=Path),
              help="The registry file (nodes.toml) the node and its key go into: the "
              "gateway's, or one of your own to copy into it. Required.")
@click.option("--name", help="Name on MQTT and the label. Default: node-<id, 4 digits>.")
@click.option("--location", default="", help="Where the node is mounted (for the registry).")
@click.option("--factory-reset", is_flag=True,
              help="If the node is already provisioned and its key is in --registry, wipe it "
              "with a signed command first.")
@click.option("--baud", default=DEFAULT_BAUD, show_default=True, help="Link baud rate.")
@click.option("--hello-timeout", default=45.0, show_default=True,
              help="Seconds to wait for the node's first frame (its HELLO, when it starts).")
@click.option("--data-timeout", default=120.0, show_default=True,
              help="Seconds to wait for the first reading (sensors warm up first).")
def provision(port: str, node_id: int, kind: str, link: str, registry: Path | None,
              name: str | None, location: str, factory_reset: bool, baud: int,
              hello_timeout: float, data_timeout: float) -> None:
    """Provision the factory-state node on PORT: id, key, kind; register it; label line."""
    if registry is None:
        raise click.UsageError(NEED_REGISTRY)
    known = check_registry_path(registry)
    entry = NodeInfo(node_id, name or f"node-{node_id:04d}", kind, bytes(KEY_BYTES), link,
                     location)
    check_entry(registry, entry)
    run = Provisioning(port, registry, entry)
    try:
        with open_port(port, baud=baud) as serial_port:
            session = NodeSession(FrameLink(serial_port))
            if factory_reset and known is not None:
                session.keys = {node.id: node.key for node in known.nodes}
            run.run(session, known, factory_reset=factory_reset, hello_timeout=hello_timeout,
                    data_timeout=data_timeout)
    except KeyboardInterrupt:
        raise run.stopped() from None
