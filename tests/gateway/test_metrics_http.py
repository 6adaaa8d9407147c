"""Gateway metrics (names, snapshot, health verdict) and the /healthz, /metrics server."""

import asyncio
import json
import platform
import re
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from streetsense.gateway.metrics import MAX_UNKNOWN_IDS, Metrics
from streetsense.gateway.version import gateway_version
from streetsense.gateway.web import serve_http, split_listen


class Clock:
    """A settable UNIX clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, parsed back: {(name, labels): value}."""
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def healthy(metrics: Metrics) -> Metrics:
    """``metrics`` with the broker connected, one port up and a small journal."""
    metrics.set_broker(True)
    metrics.set_port("pole-12", True)
    metrics.set_journal(depth=0, oldest_undelivered=None, size_bytes=1000, max_bytes=10_000)
    return metrics


def test_exposition_names_and_labels() -> None:
    """The layers' calls show up under streetsense_gateway_* names with their labels."""
    clock = Clock(1_800_000_000.0)
    metrics = Metrics(clock=clock)
    metrics.frame_in("pole-12")
    metrics.frame_in("pole-12")
    metrics.rejected("bad_tag")
    metrics.published(3)
    metrics.publish_failed()
    metrics.set_broker(True)
    metrics.set_broker(True, reconnected=True)
    metrics.set_journal(
        depth=7, oldest_undelivered=clock.now - 90, size_bytes=4096, max_bytes=1 << 20
    )
    metrics.journal_full(2)
    metrics.node_seen("HN-0042", rssi_dbm=-71)
    metrics.set_port("pole-12", False)
    metrics.downlink("ack")
    metrics.unknown_node(99)
    metrics.watch_nodes(lambda: {"HN-0042": True, "HN-0043": False})
    p = "streetsense_gateway_"
    build = samples(metrics).pop((f"{p}build_info", (
        ("protocol", "1.0"), ("python", platform.python_version()),
        ("version", gateway_version()))))
    assert build == 1.0
    assert {k: v for k, v in samples(metrics).items() if k[0] != f"{p}build_info"} == {
        (f"{p}frames_received_total", (("port", "pole-12"),)): 2.0,
        (f"{p}frames_rejected_total", (("reason", "bad_tag"),)): 1.0,
        (f"{p}messages_published_total", ()): 3.0,
        (f"{p}publish_failures_total", ()): 1.0,
        (f"{p}broker_connected", ()): 1.0,
        (f"{p}broker_reconnects_total", ()): 1.0,
        (f"{p}journal_undelivered_messages", ()): 7.0,
        (f"{p}journal_size_bytes", ()): 4096.0,
        (f"{p}journal_max_bytes", ()): float(1 << 20),
        (f"{p}journal_oldest_age_seconds", ()): 90.0,
        (f"{p}journal_full_drops_total", ()): 2.0,
        (f"{p}node_last_seen_timestamp_seconds", (("node", "HN-0042"),)): clock.now,
        (f"{p}node_rssi_dbm", (("node", "HN-0042"),)): -71.0,
        (f"{p}node_frames_received_total", (("node", "HN-0042"),)): 1.0,
        (f"{p}node_online", (("node", "HN-0042"),)): 1.0,
        (f"{p}node_online", (("node", "HN-0043"),)): 0.0,
        (f"{p}port_up", (("port", "pole-12"),)): 0.0,
        (f"{p}downlinks_total", (("type", "ack"),)): 1.0,
        (f"{p}unknown_nodes", ()): 1.0,
    }


def test_oldest_age_follows_the_clock_and_instances_are_separate() -> None:
    """The journal age grows with time between updates; two Metrics never share series."""
    clock = Clock(1000.0)
    first, second = Metrics(clock=clock), Metrics(clock=clock)
    first.set_journal(depth=1, oldest_undelivered=990.0, size_bytes=0, max_bytes=1)
    clock.now = 1030.0
    assert first.snapshot()["journal"]["oldest_age_s"] == 40.0
    assert second.snapshot()["journal"]["oldest_age_s"] == 0.0
    first.frame_in("a")
    assert second.snapshot()["frames_in"] == {}


def test_snapshot_for_the_health_message() -> None:
    """snapshot() is plain JSON: counts by label, broker, journal, ports, unknown ids."""
    metrics = healthy(Metrics(clock=Clock(50.0)))
    metrics.frame_in("pole-12")
    metrics.rejected("crc")
    metrics.rejected("crc")
    metrics.unknown_node(7)
    metrics.unknown_node(3)
    metrics.node_seen("HN-0042")
    snapshot = metrics.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["frames_in"] == {"pole-12": 1}
    assert snapshot["frames_rejected"] == {"crc": 2}
    assert snapshot["broker"] == {"connected": True, "reconnects": 0}
    assert snapshot["journal"]["size_bytes"] == 1000 and snapshot["ports_up"] == {"pole-12": True}
    assert snapshot["unknown_nodes"] == [3, 7] and snapshot["nodes_last_seen"] == {"HN-0042": 50}


def test_unknown_nodes_are_bounded_and_reported_once() -> None:
    """unknown_node() is True only the first time an id is heard, and remembers a bounded set."""
    metrics = Metrics()
    assert metrics.unknown_node(5) and not metrics.unknown_node(5)
    for node_id in range(1000, 1000 + 2 * MAX_UNKNOWN_IDS):
        metrics.unknown_node(node_id)
    assert len(metrics.snapshot()["unknown_nodes"]) == MAX_UNKNOWN_IDS


def test_forget_node_drops_its_series() -> None:
    """A node removed from the registry loses its last-seen, RSSI and frame series."""
    metrics = Metrics()
    metrics.node_seen("HN-1", rssi_dbm=-60)
    metrics.node_seen("HN-2")
    metrics.forget_node("HN-1")
    metrics.forget_node("HN-3")  # never seen: no error
    assert {labels for (name, labels) in samples(metrics)
            if labels and "build" not in name} == {(("node", "HN-2"),)}


def test_health_reasons() -> None:
    """Health is ok with broker up, ports up, journal below 90 %; each failure is a reason."""
    metrics = healthy(Metrics())
    assert metrics.health() == {"status": "ok", "reasons": []}
    metrics.set_broker(False)
    metrics.set_port("pole-13", False)
    metrics.set_journal(depth=5, oldest_undelivered=None, size_bytes=9_500, max_bytes=10_000)
    assert metrics.health() == {
        "status": "degraded",
        "reasons": ["broker disconnected", "journal 95% full", "port pole-13 down"],
    }


def test_split_listen() -> None:
    """host:port splits for IPv4 and bracketed IPv6."""
    assert split_listen("127.0.0.1:9180") == ("127.0.0.1", 9180)
    assert split_listen("[::1]:0") == ("::1", 0)


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a real HTTP request with urllib."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def test_http_healthz_and_metrics() -> None:
    """/healthz is 503 with reasons while degraded, 200 once ok; /metrics is Prometheus text."""
    metrics = Metrics()
    metrics.set_port("pole-12", True)
    async with serve_http(metrics, "127.0.0.1:0") as server:
        base = server.url
        status, headers, body = await asyncio.to_thread(get, f"{base}/healthz")
        document = json.loads(body)
        assert status == 503 and headers["Content-Type"].startswith("application/json")
        assert document["status"] == "degraded"
        assert document["reasons"] == ["broker disconnected"]
        assert document["ports_up"] == {"pole-12": True}
        metrics.set_broker(True)
        status, _, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        metrics.frame_in("pole-12")
        status, headers, body = await asyncio.to_thread(get, f"{base}/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'streetsense_gateway_frames_received_total{port="pole-12"} 1.0' in body.decode()
        status, headers, body = await asyncio.to_thread(get, f"{base}/metrics", "HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
        assert (await asyncio.to_thread(get, f"{base}/nothing"))[0] == 404
        assert (await asyncio.to_thread(get, f"{base}/healthz", "POST"))[0] == 405


async def test_http_bad_requests_get_400() -> None:
    """A garbled request line or an oversized header is answered 400, and the server lives on."""
    metrics = healthy(Metrics())
    async with serve_http(metrics, "127.0.0.1:0") as server:
        port = server.port

        def raw(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                return b"".join(iter(lambda: sock.recv(4096), b""))

        assert re.match(rb"HTTP/1\.[01] 400 ", await asyncio.to_thread(raw, b"hello\r\n\r\n"))
        huge = b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"
        assert re.match(rb"HTTP/1\.[01] 400 ", await asyncio.to_thread(raw, huge))
        reply = await asyncio.to_thread(
            raw, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_http_every_response_carries_the_security_headers() -> None:
    """The page, the JSON, the event stream and an error all forbid inline script and
    sniffing, and are not cached."""
    metrics = healthy(Metrics())
    async with serve_http(metrics, "127.0.0.1:0") as server:

        def head_of(path: str) -> dict[str, str]:
            request = urllib.request.Request(server.url + path)
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return dict(response.headers)  # the stream: its headers, then closed
            except urllib.error.HTTPError as error:
                return dict(error.headers)

        for path in ("/", "/api/status", "/events", "/nothing", "/page.js"):
            headers = await asyncio.to_thread(head_of, path)
            assert "script-src 'self'" in headers["Content-Security-Policy"], path
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert headers["Cache-Control"] == "no-store", path
