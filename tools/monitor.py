"""The ``monitor`` command: live decoded frames from a serial port, for checking a node.

Each frame becomes one table row (or one JSON line): node, type, boot, seq, whether its tag
was verified, and what it says. Frames that fail (CRC, tag, malformed) are shown where they
happened and counted; the counts are printed when the monitor stops.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import click

from streetsense.gateway.registry import Registry, RegistryError
from streetsense.protocol import ProtocolError, parse_frame, peek_node_id
from streetsense.protocol import messages as m

from .describe import frame_summary, without_key
from .serialport import DEFAULT_BAUD, FrameLink, open_port

__all__ = ["KnownNodes", "monitor"]

_HEADER = f"{'time':12} {'node':10} {'type':7} {'boot':>5} {'seq':>6} {'auth':9} summary"


class KnownNodes:
    """Names and keys from a gateway registry file; without one, every node is unknown."""

    def __init__(self, registry: Path | None = None) -> None:
        self._registry: Registry | None = None
        if registry is not None:
            try:
                self._registry = Registry.load(registry)
            except RegistryError as exc:
                raise click.ClickException(str(exc)) from None

    def key(self, node_id: int | None) -> bytes | None:
        node = self._registry.lookup(node_id) if self._registry is not None and node_id else None
        return node.key if node else None

    def name(self, node_id: int) -> str:
        node = self._registry.lookup(node_id) if self._registry is not None else None
        return node.name if node else str(node_id)


def _hex(value: object) -> str:
    """JSON for the one non-JSON type a body holds: bytes, as hex."""
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Monitor:
    """Turns stream items into output lines and keeps the counts."""

    def __init__(self, nodes: KnownNodes, *, as_json: bool) -> None:
        self.nodes = nodes
        self.as_json = as_json
        self.frames = 0
        self.verified = 0
        self.failures: Counter[str] = Counter()

    def line(self, item: bytes | ProtocolError, link: FrameLink | None = None) -> str:
        """The output line for ``item``; with ``link``, verified frames are acked on it."""
        now = datetime.now()
        node_id = None if isinstance(item, ProtocolError) else peek_node_id(item)
        try:
            if isinstance(item, ProtocolError):
                raise item
            frame = parse_frame(item, self.nodes.key(node_id))
        except ProtocolError as exc:
            self.failures[exc.reason] += 1
            return self._failure(now, exc, node_id, item if isinstance(item, bytes) else None)
        self.frames += 1
        self.verified += frame.verified
        if link is not None and frame.verified and frame.ack_requested:
            link.ack(frame, self.nodes.key(frame.node_id))
        auth = "verified" if frame.verified else "unchecked" if frame.signed else "unsigned"
        body = without_key(frame.type, frame.body)
        summary = frame_summary(frame.type, body)
        kind = frame.type_name or f"0x{frame.type:02x}"
        if self.as_json:
            return json.dumps({
                "time": now.isoformat(timespec="milliseconds"), "node_id": frame.node_id,
                "node": self.nodes.name(frame.node_id), "type": kind, "boot": frame.boot,
                "seq": frame.seq, "flags": frame.flags, "signed": frame.signed,
                "verified": frame.verified, "body": m.named(frame.type, body),
                "summary": summary}, ensure_ascii=False, default=_hex)
        return (f"{now:%H:%M:%S.%f}"[:12] + f" {self.nodes.name(frame.node_id):10} {kind:7}"
                f" {frame.boot:>5} {frame.seq:>6} {auth:9} {summary}")

    def _failure(self, now: datetime, exc: ProtocolError, node_id: int | None,
                 raw: bytes | None) -> str:
        if self.as_json:
            return json.dumps({
                "time": now.isoformat(timespec="milliseconds"), "error": type(exc).__name__,
                "reason": exc.reason, "field": exc.field, "message": exc.message,
                "hex": raw.hex() if raw is not None else None})
        # A failed frame's header cannot be trusted; its node id is shown only as a hint.
        node = f"{node_id}?" if node_id is not None else "?"
        return (f"{now:%H:%M:%S.%f}"[:12] + f" {node:10} FAILED  {'':>5} {'':>6} {'':9} "
                f"{exc.reason}: {exc}")

    def totals(self) -> str:
        failed = sum(self.failures.values())
        if self.as_json:
            return json.dumps({"totals": {"frames": self.frames, "verified": self.verified,
                                          "failed": dict(self.failures)}})
        plural = "" if self.frames == 1 else "s"
        text = f"{self.frames} frame{plural} ({self.verified} verified), {failed} failed"
        if failed:
            text += ": " + ", ".join(f"{k} {v}" for k, v in sorted(self.failures.items()))
        return text


@click.command()
@click.argument("port")
@click.option("--baud", default=DEFAULT_BAUD, show_default=True, help="Link baud rate.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--registry", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gateway registry (nodes.toml): verify tags with the nodes' keys.")
@click.option("--ack", is_flag=True,
              help="Acknowledge verified frames like a gateway, so the node sends all it has "
              "(needs --registry; frames acked here never reach the gateway).")
@click.option("--count", type=click.IntRange(min=1),
              help="Stop after COUNT good frames.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True),
              help="Stop after SECONDS.")
def monitor(port: str, baud: int, as_json: bool, registry: Path | None, ack: bool,
            count: int | None, seconds: float | None) -> None:
    """Show the frames arriving on PORT live, decoded, with CRC/tag failures counted.

    Only listens, unless --ack. Runs until Ctrl-C (or --count/--seconds); exits 1 if any
    frame failed.
    """
    if ack and registry is None:
        raise click.UsageError("--ack needs --registry: acks are signed with the node's key.")
    watcher = Monitor(KnownNodes(registry), as_json=as_json)
    with open_port(port, baud=baud) as serial_port:
        link = FrameLink(serial_port)
        click.echo(f"monitoring {port} at {baud} baud; Ctrl-C to stop", err=True)
        if not as_json:
            click.echo(_HEADER)
        deadline = time.monotonic() + seconds if seconds else None
        try:
            while count is None or watcher.frames < count:
                wait_s = 0.5 if deadline is None else deadline - time.monotonic()
                if wait_s <= 0:
                    break
                item = link.read(wait_s)
                if item is not None:
                    click.echo(watcher.line(item, link if ack else None))
        except KeyboardInterrupt:
            pass
        finally:  # the counts so far, also when the port goes away
            click.echo(watcher.totals())
    if watcher.failures:
        raise SystemExit(1)
