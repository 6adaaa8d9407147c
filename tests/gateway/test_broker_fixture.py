"""The broker fixtures: a real mosquitto that stops, dies and comes back on its port; a proxy
that forwards, black-holes and resets."""

import asyncio
import os
import socket

import aiomqtt
import pytest

from streetsense.hil.broker import BrokerError, Mosquitto, TcpProxy

# MQTT 3.1.1 CONNECT (clean session, keepalive 60, client id "t") and the CONNACK accepting it.
CONNECT = bytes.fromhex("100d00044d5154540402003c000174")
CONNACK = bytes.fromhex("20020000")


def mqtt_session(port: int, timeout_s: float = 5.0) -> socket.socket:
    """A raw MQTT connection to 127.0.0.1:port with CONNECT sent (CONNACK not read yet)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.sendall(CONNECT)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from ``sock`` (its timeout bounds each read)."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def refused(port: int) -> bool:
    """Whether a TCP connect to 127.0.0.1:port is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_round_trip_through_real_broker(mosquitto: Mosquitto) -> None:
    """A QoS 1 message published to the fixture's broker reaches a subscriber."""
    async with aiomqtt.Client(mosquitto.host, port=mosquitto.port, identifier="sub") as sub:
        await sub.subscribe("t/#", qos=1)
        async with aiomqtt.Client(mosquitto.host, port=mosquitto.port, identifier="pub") as pub:
            await pub.publish("t/x", b"hello", qos=1)
        async with asyncio.timeout(5):
            message = await anext(sub.messages)
    assert (str(message.topic), message.payload) == ("t/x", b"hello")


def test_stop_and_restart_keep_the_port(mosquitto: Mosquitto) -> None:
    """stop() refuses connections; restart() serves again on the same port and URL."""
    port, url = mosquitto.port, mosquitto.url
    assert url == f"mqtt://127.0.0.1:{port}"
    mosquitto.stop()
    assert not mosquitto.running and refused(port)
    mosquitto.restart()
    assert mosquitto.running and (mosquitto.port, mosquitto.url) == (port, url)
    with mqtt_session(port) as sock:
        assert recv_exactly(sock, 4) == CONNACK


def test_kill_is_sigkill_and_start_recovers(mosquitto: Mosquitto) -> None:
    """kill() ends the process with SIGKILL, drops sessions; start() brings it back."""
    with mqtt_session(mosquitto.port) as sock:
        assert recv_exactly(sock, 4) == CONNACK
        pid = mosquitto.pid
        mosquitto.kill()
        assert sock.recv(1) == b""
    assert pid is not None and not mosquitto.running and refused(mosquitto.port)
    mosquitto.start()
    assert mosquitto.pid not in (None, pid)


def test_context_manager_cleans_up() -> None:
    """Leaving the with block stops the process and removes the temp dir; ports differ."""
    with Mosquitto() as first, Mosquitto() as second:
        assert first.port != second.port
        pid, workdir = first.pid, first.workdir
        assert workdir.is_dir() and "listener" in (workdir / "mosquitto.conf").read_text()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


def test_start_failure_reports_the_log() -> None:
    """A broker that cannot start raises BrokerError carrying mosquitto's own complaint."""
    broker = Mosquitto(extra_config=["no_such_option 1"])
    try:
        with pytest.raises(BrokerError, match="no_such_option"):
            broker.start()
        assert not broker.running
    finally:
        broker.close()


def test_proxy_forwards_mqtt(mosquitto_proxy: TcpProxy) -> None:
    """Bytes flow both ways through the proxy: CONNECT in, CONNACK back."""
    with mqtt_session(mosquitto_proxy.port) as sock:
        assert recv_exactly(sock, 4) == CONNACK
        assert mosquitto_proxy.connections == 1


def test_blackhole_holds_then_delivers(mosquitto_proxy: TcpProxy) -> None:
    """While black-holed the connection stays open and silent; afterwards the held bytes flow."""
    mosquitto_proxy.blackhole(True)
    with mqtt_session(mosquitto_proxy.port) as sock:
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(4)
        mosquitto_proxy.blackhole(False)
        sock.settimeout(5)
        assert recv_exactly(sock, 4) == CONNACK


def test_reset_all_sends_rst(mosquitto_proxy: TcpProxy) -> None:
    """reset_all() aborts open connections (the client sees a reset), even black-holed ones."""
    with mqtt_session(mosquitto_proxy.port) as live:
        assert recv_exactly(live, 4) == CONNACK
        mosquitto_proxy.blackhole(True)
        with mqtt_session(mosquitto_proxy.port) as held:
            mosquitto_proxy.wait_for_connections(2)
            mosquitto_proxy.reset_all()
            for sock in (live, held):
                with pytest.raises(ConnectionResetError):
                    sock.recv(4)
    assert mosquitto_proxy.connections == 0


def test_proxy_resets_when_target_is_down(mosquitto: Mosquitto, mosquitto_proxy: TcpProxy) -> None:
    """With the broker stopped, a client of the proxy is reset instead of hanging."""
    mosquitto.stop()
    # The reset may already be there when connect() returns, or come at the first read.
    with pytest.raises(ConnectionResetError):
        with socket.create_connection(("127.0.0.1", mosquitto_proxy.port), timeout=5) as sock:
            sock.recv(4)
    mosquitto.start()
    with mqtt_session(mosquitto_proxy.port) as sock:
        assert recv_exactly(sock, 4) == CONNACK
