"""The ``decode`` command: wire bytes to JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from streetsense.gateway.payloads import jsonable
from streetsense.protocol import Deframer, ProtocolError, parse_frame
from streetsense.protocol.messages import named

from .describe import without_key


def _is_file(source: str) -> bool:
    """Whether ``source`` names a file; hex longer than a file name may be is not one."""
    try:
        return Path(source).is_file()
    except OSError:  # ENAMETOOLONG: over NAME_MAX (255) bytes, so no file has that name
        return False


@click.command()
@click.argument("source")
def decode(source: str) -> None:
    """Decode wire bytes to JSON lines: SOURCE is hex, or a file of raw bytes ('-' for stdin).

    The bytes may hold several COBS frames delimited by 0x00; a frame that fails to
    decode is printed with its error, and the command then exits with status 1. Hex
    holds whole frames (the last 0x00 may be left out); a file or stdin is a captured
    stream, whose bytes after the last 0x00 are a cut-off frame (NeedMoreBytes).
    """
    if source == "-":
        data = sys.stdin.buffer.read()
    elif _is_file(source):
        data = Path(source).read_bytes()
    else:
        try:
            data = bytes.fromhex(source.replace(" ", ""))
        except ValueError:
            raise click.UsageError(f"{source!r} is neither a file nor hex bytes") from None
        if not data.endswith(b"\x00"):
            data += b"\x00"
    failed = False
    deframer = Deframer()
    for item in deframer.feed(data) + deframer.end():
        if isinstance(item, ProtocolError):
            failed = True
            click.echo(json.dumps({"error": type(item).__name__, "reason": item.reason,
                                   "field": item.field, "message": item.message}))
            continue
        try:
            frame = parse_frame(item)
        except ProtocolError as exc:
            failed = True
            click.echo(json.dumps({"error": type(exc).__name__, "reason": exc.reason,
                                   "field": exc.field, "message": exc.message,
                                   "hex": item.hex()}))
            continue
        click.echo(json.dumps({
            "type": frame.type_name or frame.type, "version": frame.version,
            "flags": frame.flags, "node_id": frame.node_id, "boot": frame.boot,
            "seq": frame.seq, "signed": frame.signed, "verified": False,
            "body": jsonable(named(frame.type, without_key(frame.type, frame.body))),
        }))
    if failed:
        sys.exit(1)
