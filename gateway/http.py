"""``/healthz`` and ``/metrics`` over HTTP/1.1 on asyncio streams (no web framework).

``GET /healthz`` answers 200 with ``{"status": "ok", ...}`` or 503 with
``{"status": "degraded", "reasons": [...]}`` (broker disconnected, journal near full, a
port down), so a monitoring probe can use the status code alone. ``GET /metrics`` is the
Prometheus text format. One request per connection; requests are small and bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from .metrics import Metrics

__all__ = ["serve_http", "split_listen"]

log = logging.getLogger(__name__)

# The classic text format: every Prometheus (2.x and 3.x), VictoriaMetrics and Telegraf read
# it, and with our plain metric names it is byte for byte what generate_latest() writes.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_HEADER_BYTES = 8192
REQUEST_TIMEOUT_S = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9180"`` → ("127.0.0.1", 9180); ``"[::1]:9180"`` → ("::1", 9180)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def serve_http(metrics: Metrics, listen: str) -> AsyncIterator[asyncio.Server]:
    """Serve ``metrics`` on ``listen`` ("host:port"; port 0 picks one: see
    ``server.sockets``) for the body of the ``async with``."""
    host, port = split_listen(listen)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                request = await _request_line(reader)
                status, content_type, body = _respond(metrics, request)
                head = (
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Cache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n"
                )
                head_only = request is not None and request[0] == "HEAD"
                writer.write(head.encode("ascii") + (b"" if head_only else body))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that went away or stalled: nothing to answer
        except Exception:
            log.exception("HTTP handler failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES)
    log.info("HTTP /healthz and /metrics on %s", listen)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def _request_line(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """(method, path) of the request, its headers read and ignored; None if malformed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        return None
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    return parts[0], parts[1]


def _respond(metrics: Metrics, request: tuple[str, str] | None) -> tuple[int, str, bytes]:
    if request is None:
        return 400, "text/plain; charset=utf-8", b"bad request\n"
    method, target = request
    path = target.split("?", 1)[0]
    if path not in ("/healthz", "/metrics"):
        return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"
    if method not in ("GET", "HEAD"):
        return 405, "text/plain; charset=utf-8", b"only GET\n"
    if path == "/metrics":
        return 200, METRICS_CONTENT_TYPE, metrics.exposition()
    health = metrics.health()
    status = 200 if health["status"] == "ok" else 503
    document = {**health, **metrics.snapshot()}
    body = (json.dumps(document, separators=(",", ":")) + "\n").encode()
    return status, "application/json", body
