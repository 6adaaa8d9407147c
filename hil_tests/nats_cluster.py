"""A 3-node NATS JetStream cluster with MQTT listeners, on free 127.0.0.1 ports, for tests.

The distributed broker a city grows into (docs/scaling.md). Each member is a ``nats-server``
(Debian package) with its own config: client port, route port, MQTT listener, JetStream store
in the cluster's temporary folder, routes to every member. NATS stores MQTT sessions and
retained messages in replicated JetStream streams, so a persistent subscriber on one member
gets what was published on another, and a member's loss is survived by the other two.
NATS speaks MQTT 3.1.1 only: clients use ``protocol = "3.1.1"``.

A member is ready when it answers an MQTT CONNECT with CONNACK 0: that needs the cluster's
JetStream to be up (the MQTT streams are created on the first connect), so ``start()`` of
the cluster returns when every member serves MQTT. Members are `ServerProcess`es: a test may
``kill()`` (SIGKILL) and ``start()`` one again, on the same ports and store.

Never the machine's own NATS on 4222: every port here is a free one.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from streetsense.loopback import LOCALHOST, free_port

from .broker import BrokerError, ManagedServer, ServerProcess, find_executable

__all__ = ["NatsCluster", "NatsMember", "find_nats_server", "mqtt_connects"]

NATS_MISSING = "nats-server is missing: install it with 'sudo apt-get install nats-server'"


def find_nats_server() -> str | None:
    """``$NATS_SERVER``, else ``nats-server`` on PATH, else ``/usr/sbin/nats-server``."""
    return find_executable("nats-server", env="NATS_SERVER", fallback="/usr/sbin/nats-server")


def mqtt_connects(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """Whether an MQTT 3.1.1 CONNECT (clean session) to host:port gets CONNACK 0 now."""
    client_id = b"streetsense-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, 10 s
    payload = len(client_id).to_bytes(2, "big") + client_id
    connect = bytes([0x10, len(variable) + len(payload)]) + variable + payload
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(connect)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return reply[0] == 0x20 and reply[3] == 0


class NatsMember(ServerProcess):
    """One member of a `NatsCluster`: ``url`` is its MQTT listener (``mqtt://127.0.0.1:P``)."""

    def __init__(self, executable: str, *, name: str, workdir: Path, mqtt_port: int,
                 client_port: int, route_port: int, routes: list[str],
                 start_timeout_s: float) -> None:
        self.name = name
        config = workdir / f"{name}.conf"
        store = workdir / f"{name}-jetstream"
        route_list = ", ".join(f'"{route}"' for route in routes)
        config.write_text(
            f'listen: "{LOCALHOST}:{client_port}"\n'
            f'server_name: "{name}"\n'
            f'jetstream {{ store_dir: "{store}" }}\n'
            f'mqtt {{ listen: "{LOCALHOST}:{mqtt_port}" }}\n'
            f'cluster {{ name: "city", listen: "{LOCALHOST}:{route_port}", '
            f"routes: [{route_list}] }}\n")
        super().__init__([executable, "-c", str(config)], mqtt_port, workdir,
                         workdir / f"{name}.log", start_timeout_s=start_timeout_s)

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<mqtt port>``."""
        return f"mqtt://{self.host}:{self.port}"

    def ready(self) -> bool:
        return mqtt_connects(self.host, self.port)

    def launch(self) -> None:
        """Start the process without waiting (the cluster waits once all are launched)."""
        if not self.running:
            self.start_process()


class NatsCluster(ManagedServer):
    """``size`` NATS servers clustered over routes, JetStream on, MQTT on each member.

    ``with NatsCluster() as cluster:`` starts every member and waits until each serves MQTT;
    ``cluster.urls`` lists their MQTT URLs; ``cluster.members[i].kill()`` loses one.
    """

    def __init__(self, size: int = 3, *, executable: str | None = None,
                 start_timeout_s: float = 60.0) -> None:
        exe = executable or find_nats_server()
        if exe is None:
            raise BrokerError(NATS_MISSING)
        self.workdir = Path(tempfile.mkdtemp(prefix="streetsense-nats-"))
        route_ports = [free_port() for _ in range(size)]
        routes = [f"nats-route://{LOCALHOST}:{port}" for port in route_ports]
        self.members = [
            NatsMember(exe, name=f"n{index + 1}", workdir=self.workdir, mqtt_port=free_port(),
                       client_port=free_port(), route_port=route_port, routes=routes,
                       start_timeout_s=start_timeout_s)
            for index, route_port in enumerate(route_ports)]

    @property
    def urls(self) -> list[str]:
        """The members' MQTT URLs, in member order."""
        return [member.url for member in self.members]

    def member(self, url: str) -> NatsMember:
        """The member whose MQTT URL is ``url``."""
        return next(member for member in self.members if member.url == url)

    def start(self) -> None:
        """Launch every member, then wait until each serves MQTT (they need each other)."""
        for member in self.members:
            member.launch()
        for member in self.members:
            member.wait_ready()

    def log(self) -> str:
        """Every member's log, one after another."""
        return "\n".join(f"===== {m.name} =====\n{m.log()}" for m in self.members)

    def stop(self) -> None:
        """Stop every member."""
        for member in self.members:
            member.stop()
