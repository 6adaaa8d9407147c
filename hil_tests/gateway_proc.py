"""The gateway as a real process for HIL tests: generated config and registry, log captured.

`GatewayProcess` writes a ``gateway.toml`` and a ``registry.toml`` into its work folder,
runs ``streetsense gateway run --config gateway.toml`` (``python -m
streetsense.tools.gateway run``; or any ``command`` given, e.g. a
deliberately broken gateway), and waits for the gateway's systemd readiness notification
(``READY=1`` on ``$NOTIFY_SOCKET``), so no test polls or sleeps for it. The journal lives
in the work folder, so ``kill()`` (SIGKILL) then ``start()`` is a crash and a restart.
Everything the process writes goes to ``gateway.log`` (all runs, one banner per start).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streetsense.gateway.command_auth import load_operator_key, make_operator_key, sign
from streetsense.gateway.topics import Topics

from .lifecycle import Managed

__all__ = ["GatewayError", "GatewayProcess", "GatewayTopics", "NodeEntry", "SerialEntry",
           "to_toml"]


class GatewayError(RuntimeError):
    """The gateway did not become ready or exited early; the message holds its log tail."""


@dataclass(frozen=True)
class NodeEntry:
    """One ``[[node]]`` of the registry (see ``streetsense.gateway.registry``)."""

    id: int
    name: str
    kind: str
    key: bytes = field(repr=False)
    link: str = "serial"
    location: str = "HIL bench"
    enabled: bool = True

    def as_table(self) -> dict[str, Any]:
        """The TOML table for this node."""
        return {"id": self.id, "name": self.name, "kind": self.kind, "key": self.key.hex(),
                "link": self.link, "location": self.location, "enabled": self.enabled}


@dataclass(frozen=True)
class SerialEntry:
    """One ``[[serial]]`` port of the gateway config."""

    path: str
    name: str
    baud: int = 115200


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_scalar(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(document: Mapping[str, Any]) -> str:
    """TOML text for nested dicts: dict values become tables, lists of dicts arrays of tables.

    Enough for generated configs; not a general TOML writer (no nested tables in arrays).
    """
    lines: list[str] = []

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        simple = {k: v for k, v in body.items() if not _is_table(v) and not _is_table_array(v)}
        lines.extend(f"{json.dumps(k)} = {_toml_scalar(v)}" for k, v in simple.items())
        for key, value in body.items():
            name = f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key)
            if _is_table(value):
                lines.extend(["", f"[{name}]"])
                table(name, value)
            elif _is_table_array(value):
                for item in value:
                    lines.extend(["", f"[[{name}]]"])
                    lines.extend(f"{json.dumps(k)} = {_toml_scalar(v)}" for k, v in item.items())

    table("", document)
    return "\n".join(lines) + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, tables recursively."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


class GatewayTopics:
    """Where a gateway under test publishes (a local process or a remote bench's gateway),
    and how its commands are signed (``operator_key``: the site's; None when not known)."""

    prefix: str
    site: str
    gateway_id: str
    operator_key: bytes | None = None

    def sign_command(self, node: str, name: str,
                     request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(topic, payload) of command ``name`` for ``node``, signed with the operator key."""
        where = self.topics.command(node, name)
        if self.operator_key is None:
            raise GatewayError("no operator key to sign commands with: set "
                               "STREETSENSE_OPERATOR_KEY_FILE to the bench site's key file")
        return where, sign(self.operator_key, where, request)

    @property
    def topics(self) -> Topics:
        """This gateway's topic layout."""
        return Topics(self.prefix, self.site, self.gateway_id)

    def topic(self, node: str, sub: str) -> str:
        """``<prefix>/<site>/<node>/<sub>``: a node's topic at this gateway."""
        return self.topics.node(node, sub)

    @property
    def gateway_topic(self) -> str:
        """``<prefix>/<site>/_gateway/<id>``: the gateway's own topics start here."""
        return self.topics.gateway_base


class GatewayProcess(GatewayTopics, Managed):
    """A gateway process for one test (or one bench session).

    ``mqtt_url`` is the broker, or a list of a cluster's members (``[mqtt] urls``).
    ``settings`` is merged over the generated config (e.g. ``{"hil": {"enabled": True}}``).
    ``command`` replaces ``python -m streetsense.tools.gateway run``; ``--config FILE``
    is appended to it.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        mqtt_url: str | Sequence[str],
        serial: Sequence[SerialEntry] = (),
        nodes: Sequence[NodeEntry] = (),
        site: str = "bench",
        gateway_id: str = "gw-hil",
        prefix: str = "streetsense",
        settings: Mapping[str, Any] | None = None,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 20.0,
    ) -> None:
        self.workdir = workdir
        self.site = site
        self.gateway_id = gateway_id
        self.prefix = prefix
        self.ready_timeout_s = ready_timeout_s
        self.command = list(command or [sys.executable, "-m", "streetsense.tools.gateway",
                                        "run"])
        self.env = dict(env or {})
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "gateway.toml"
        self.registry_path = workdir / "registry.toml"
        self.log_path = workdir / "gateway.log"
        key_file = workdir / "operator.key"
        if not key_file.exists():
            make_operator_key(key_file)
        self.operator_key = load_operator_key(key_file)
        self.nodes = list(nodes)
        config: dict[str, Any] = {
            "registry_path": str(self.registry_path),
            "gateway": {"id": gateway_id, "site": site, "data_dir": str(workdir / "data")},
            "mqtt": {"url" if isinstance(mqtt_url, str) else "urls": mqtt_url,
                     "prefix": prefix, "client_id": f"streetsense-{gateway_id}",
                     "keepalive_s": 2},
            "journal": {"path": str(workdir / "data" / "journal.sqlite")},
            "health": {"interval_s": 1},
            "http": {"listen": False},  # tests run many gateways: no fixed port
            "commands": {"operator_key_file": str(key_file)},
        }
        if serial:
            config["serial"] = [{"path": s.path, "name": s.name, "baud": s.baud} for s in serial]
        self.config = _merge(config, settings or {})
        self.write_files()
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        # A short path: AF_UNIX paths are limited to 108 bytes, pytest's tmp paths are long.
        self._notify_dir = Path(tempfile.mkdtemp(prefix="ssgw-"))
        self._notify: socket.socket | None = None

    def write_files(self) -> None:
        """(Re)write the config and the registry from ``config`` and ``nodes``."""
        self.config_path.write_text(to_toml(self.config))
        registry = {"node": [node.as_table() for node in self.nodes]} if self.nodes else {}
        self.registry_path.write_text(to_toml(registry))

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._process.pid if self._process is not None and self.running else None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run, None while running or never started."""
        return None if self._process is None else self._process.poll()

    def log(self) -> str:
        """Everything the gateway wrote, all runs."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the process and return once it has notified ``READY=1``."""
        if self.running:
            return
        self.starts += 1
        notify_path = self._notify_dir / f"n{self.starts}"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": str(notify_path),
               "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            log.write(f"===== start {self.starts}: {' '.join(self.command)} =====\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [*self.command, "--config", str(self.config_path)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait_ready(self._notify)

    def _wait_ready(self, notify: socket.socket) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise GatewayError(f"gateway not READY within {self.ready_timeout_s} s\n"
                                   f"{self._tail()}")
            # The socket wait doubles as the check interval for an early exit.
            notify.settimeout(min(remaining, 0.1))
            try:
                message = notify.recv(4096).decode(errors="replace")
            except TimeoutError:
                if self._process.poll() is not None:
                    raise GatewayError(f"gateway exited with {self._process.returncode} "
                                       f"before READY\n{self._tail()}") from None
                continue
            if "READY=1" in message.split("\n"):
                return

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit status."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_notify()
        return self.returncode

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the running process (no-op if it is not running)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def reload(self) -> None:
        """SIGHUP, and return once the gateway has said its reload is over (``READY=1`` after
        ``RELOADING=1``, as systemd's ``systemctl reload`` waits); `GatewayError` if it exited."""
        assert self._process is not None and self._notify is not None, "not running"
        self.signal(signal.SIGHUP)
        self._wait_ready(self._notify)

    def wait(self, timeout_s: float) -> int:
        """Until the process exits (``subprocess.TimeoutExpired`` after ``timeout_s``);
        returns its exit status."""
        assert self._process is not None
        status = self._process.wait(timeout=timeout_s)
        self._close_notify()
        return status

    def kill(self) -> None:
        """SIGKILL: the gateway gets no chance to flush or say goodbye."""
        process = self._process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        self._close_notify()

    def restart(self) -> None:
        """Stop gracefully and start again (same journal)."""
        self.stop()
        self.start()

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def close(self) -> None:
        """Stop the process and remove the notification socket folder."""
        self.stop()
        shutil.rmtree(self._notify_dir, ignore_errors=True)
