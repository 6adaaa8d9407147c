"""The HTTP listener: the status page at ``/``, ``/healthz``, ``/metrics``, and the live feed.

Built on aiohttp.web: the gateway is one asyncio process on a small computer, and aiohttp
serves HTTP/1.1 on the same event loop without a thread or a second server (request parsing,
limits, HEAD, 405s and server-sent events are its, not ours). Routes:

* ``GET /``: the status page (static HTML, CSS and JS from ``static/``; no inline script,
  and a Content-Security-Policy that allows none: the page only ever sets text);
* ``GET /api/status``: the status document (`StatusBoard.document`) as JSON;
* ``GET /events``: the same document as server-sent events, every ``EVENT_EVERY_S``;
* ``GET /healthz``: 200 ``{"status": "ok", ...}`` or 503 ``{"status": "degraded",
  "reasons": [...]}`` (broker disconnected, journal near full, a port down);
* ``GET /metrics``: the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from aiohttp import web

from ..metrics import Metrics
from .status import StatusBoard

__all__ = ["HttpServer", "serve_http", "split_listen"]

log = logging.getLogger("streetsense.gateway.http")

# The classic text format: every Prometheus (2.x and 3.x), VictoriaMetrics and Telegraf read
# it, and with our plain metric names it is byte for byte what generate_latest() writes.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_HEADER_BYTES = 8190  # a request line or a header longer than this is answered 400
EVENT_EVERY_S = 1.0
MAX_EVENT_STREAMS = 16  # pages open at once; more are answered 503
SHUTDOWN_S = 1.0  # open connections get this long when the gateway stops
_STATIC = {"/": ("index.html", "text/html"), "/page.js": ("page.js", "text/javascript"),
           "/page.css": ("page.css", "text/css")}
_SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_METRICS_KEY = web.AppKey("metrics", Metrics)
_BOARD_KEY = web.AppKey("board", StatusBoard)
_CLOSING_KEY = web.AppKey("closing", asyncio.Event)


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9180"`` → ("127.0.0.1", 9180); ``"[::1]:9180"`` → ("::1", 9180)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class HttpServer:
    """The listener while it runs: where it listens (``port`` is the real one)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve_http(metrics: Metrics, listen: str,
                     board: StatusBoard | None = None) -> AsyncIterator[HttpServer]:
    """Serve on ``listen`` ("host:port"; port 0 picks one) for the body of the ``async with``;
    without a ``board`` the page shows what ``metrics`` alone can say."""
    host, port = split_listen(listen)
    app = _make_app(metrics, board or StatusBoard(metrics))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S,
                           max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])
        log.info("HTTP status page, /healthz and /metrics on %s:%d", host, bound)
        yield HttpServer(host, bound)
    finally:
        await runner.cleanup()


def _make_app(metrics: Metrics, board: StatusBoard) -> web.Application:
    app = web.Application(middlewares=[_not_found])
    app.on_response_prepare.append(_security_headers)
    app[_METRICS_KEY] = metrics
    app[_BOARD_KEY] = board
    app[_CLOSING_KEY] = asyncio.Event()
    for path in _STATIC:
        app.router.add_get(path, _static)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/events", _events)
    app.on_shutdown.append(_closing)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        raise web.HTTPNotFound(text="not found: try /, /healthz or /metrics\n") from None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, errors and the event stream included, before its headers go."""
    response.headers.update(_SECURITY)


async def _closing(app: web.Application) -> None:
    app[_CLOSING_KEY].set()  # event streams end at once, not at the shutdown timeout


async def _static(request: web.Request) -> web.Response:
    name, content_type = _STATIC[request.path]
    body = files(__package__).joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8")


async def _healthz(request: web.Request) -> web.Response:
    metrics = request.app[_METRICS_KEY]
    health = metrics.health()
    return _json({**health, **metrics.snapshot()}, 200 if health["status"] == "ok" else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[_METRICS_KEY].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[_BOARD_KEY].document())


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the status document now and every ``EVENT_EVERY_S``."""
    board, closing = request.app[_BOARD_KEY], request.app[_CLOSING_KEY]
    if board.streams >= MAX_EVENT_STREAMS:
        raise web.HTTPServiceUnavailable(text=f"{MAX_EVENT_STREAMS} pages are open already: "
                                              "close one, or read /api/status\n")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    board.streams += 1
    try:
        while not closing.is_set():
            text = json.dumps(board.document(), separators=(",", ":"))
            await response.write(f"data: {text}\n\n".encode())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EVENT_EVERY_S):
                    await closing.wait()
    except ConnectionError:
        pass  # the page was closed
    finally:
        board.streams -= 1
    return response


def _json(document: dict[str, Any], status: int = 200) -> web.Response:
    body = json.dumps(document, separators=(",", ":")) + "\n"
    return web.Response(text=body, status=status, content_type="application/json")
