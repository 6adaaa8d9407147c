"""The gateway's HTTP listener on aiohttp.web: the status page, ``/healthz``, ``/metrics``.

``app`` serves them; ``status`` builds the document the page shows (and ``/api/status``,
``/events`` send). See docs/gateway.md "The status page".
"""

from .app import HttpServer, serve_http, split_listen
from .status import StatusBoard

__all__ = ["HttpServer", "StatusBoard", "serve_http", "split_listen"]
