"""``streetsense ota --site S --bundle FILE --canary N``: a staged firmware rollout.

The bundle is published, retained, on ``<prefix>/<site>/_bundles/<sha256>`` (the site's
gateways keep it); then each node gets a signed ``cmd/ota`` naming it. The first ``--canary``
nodes go first: the rest follow only once every canary has reported the new version
(``confirmed`` on its ``ota`` topic, its HELLO acknowledged) and has gone on reporting
(a ``data`` or ``status`` message after that) within ``--watch-s``. A canary that fails,
rolls back, or stays silent halts the rollout, and the command says which and why (exit 1).
Nodes are those whose retained ``state`` shows them online with the ``ota`` capability
(``--node`` to name them instead). Progress: one line, redrawn, per stage.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from streetsense.gateway.bundles import Bundle

from .bundle import read_bundle
from .command import broker_client, broker_options

__all__ = ["ota"]

COLLECT_S = 1.5  # retained states arrive right after subscribing


class Halted(click.ClickException):
    """The rollout stopped: the message says where and why."""


@dataclass
class Progress:
    """What one node reported of its update."""

    name: str
    state: str = "waiting"
    done: int = 0
    total: int = 0
    message: str = ""
    confirmed_at: float | None = None
    reported_after: bool = False  # data or status since it confirmed
    failed: str = ""


@dataclass
class Rollout:
    prefix: str
    site: str
    key: bytes
    bundle: Bundle
    nodes: dict[str, Progress] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def topic(self, node: str, sub: str) -> str:
        return f"{self.prefix}/{self.site}/{node}/{sub}"

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4:
            return
        name, sub = parts[2], "/".join(parts[3:])
        progress = self.nodes.get(name)
        try:
            message = json.loads(payload) if payload else {}
        except ValueError:
            return
        if progress is None or not isinstance(message, dict):
            return
        if sub == "ota":
            progress.state = str(message.get("state"))
            progress.done = int(message.get("bytes", 0))
            progress.total = int(message.get("total", 0)) or progress.total
            progress.message = str(message.get("message", ""))
            if progress.state == "confirmed":
                if message.get("version") == self.bundle.version:
                    progress.confirmed_at = time.monotonic()
                else:
                    progress.failed = f"confirmed version {message.get('version')}"
            elif progress.state in ("failed", "rolled_back"):
                progress.failed = f"{progress.state}: {progress.message}"
        elif sub in ("data", "status") and progress.confirmed_at is not None:
            progress.reported_after = True
        elif sub == "cmd/ota/result" and message.get("code") != "OK":
            progress.failed = f"cmd/ota refused, {message.get('code')}: {message.get('message')}"
        self.changed.set()


def _bar(stage: str, nodes: list[Progress]) -> str:
    total = sum(p.total or 1 for p in nodes)
    done = sum(p.total if p.confirmed_at else min(p.done, p.total) for p in nodes)
    share = done / total if total else 0.0
    filled = int(share * 30)
    states = ", ".join(f"{p.name} {p.state}" for p in nodes)
    return f"{stage} [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%}  {states}"


@click.command()
@click.option("--bundle", "bundle_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The bundle (streetsense bundle).")
@click.option("--canary", default=1, show_default=True, type=click.IntRange(0),
              help="How many nodes are updated first; the rest wait for them.")
@click.option("--node", "names", multiple=True, help="Update these nodes (default: every "
              "online node of the site that takes updates).")
@click.option("--watch-s", default=60.0, show_default=True,
              help="How long a canary has, once confirmed, to report again.")
@click.option("--node-timeout-s", default=900.0, show_default=True,
              help="How long one stage may take.")
@broker_options
def ota(bundle_path: Path, canary: int, names: tuple[str, ...], watch_s: float,
        node_timeout_s: float, broker: str, site: str, prefix: str, key_file: Path,
        username: str | None, password_file: Path | None, confirm: bool,
        request_id: str | None, timeout_s: float) -> None:
    """Roll out a firmware bundle to a site's nodes: canaries first, then the rest."""
    from streetsense.gateway.command_auth import load_operator_key

    bundle = read_bundle(bundle_path)
    try:
        key = load_operator_key(key_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    password = None
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").splitlines()[0]
    rollout = Rollout(prefix, site, key, bundle)
    asyncio.run(_run(rollout, broker, username, password, list(names), canary, watch_s,
                     node_timeout_s))


async def _run(rollout: Rollout, url: str, username: str | None, password: str | None,
               names: list[str], canary: int, watch_s: float, stage_timeout_s: float) -> None:
    import aiomqtt

    client = broker_client(url, username, password)
    try:
        async with client:
            states: dict[str, dict[str, Any]] = {}
            for sub in ("state", "ota", "data", "status", "cmd/ota/result"):
                await client.subscribe(rollout.topic("+", sub), qos=1)
            reader = asyncio.create_task(_read(client, rollout, states))
            try:
                await asyncio.sleep(COLLECT_S)
                chosen = names or _updatable(states)
                if not chosen:
                    raise click.ClickException(f"no online node of site {rollout.site} takes "
                                               f"updates (none says \"ota\" in its state)")
                rollout.nodes = {name: Progress(name) for name in chosen}
                sha = rollout.bundle.sha256.hex()
                await client.publish(rollout.topic("_bundles", sha), rollout.bundle.image,
                                     qos=1, retain=True)
                click.echo(f"bundle {rollout.bundle.version} ({len(rollout.bundle.image)} "
                           f"bytes, SHA-256 {sha[:12]}) published; {len(chosen)} nodes")
                stages = [("canaries", chosen[:canary]), ("rest", chosen[canary:])]
                for stage, group in stages:
                    if group:
                        await _stage(client, rollout, stage, group, watch_s if
                                     stage == "canaries" else 0.0, stage_timeout_s)
            finally:
                reader.cancel()
    except aiomqtt.MqttError as exc:
        raise click.ClickException(f"cannot talk to the broker at {url}: {exc}") from None
    click.echo(f"rollout of {rollout.bundle.version} done: {len(rollout.nodes)} nodes run it")


def _updatable(states: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(name for name, state in states.items()
                  if state.get("state") == "online"
                  and "ota" in (state.get("birth") or {}).get("capabilities", []))


async def _read(client: Any, rollout: Rollout, states: dict[str, dict[str, Any]]) -> None:
    async for message in client.messages:
        topic = message.topic.value
        payload = bytes(message.payload) if message.payload else b""
        if topic.endswith("/state"):
            try:
                states[topic.split("/")[2]] = json.loads(payload) if payload else {}
            except ValueError:
                pass
        rollout.on_message(topic, payload)


async def _stage(client: Any, rollout: Rollout, stage: str, group: list[str], watch_s: float,
                 timeout_s: float) -> None:
    from streetsense.gateway.command_auth import sign

    for name in group:
        where = rollout.topic(name, "cmd/ota")
        request = {"id": secrets.token_hex(4), "sha256": rollout.bundle.sha256.hex()}
        await client.publish(where, json.dumps(sign(rollout.key, where, request)), qos=1)
    nodes = [rollout.nodes[name] for name in group]
    for progress in nodes:
        progress.total = len(rollout.bundle.image)
    deadline = time.monotonic() + timeout_s
    tty = sys.stdout.isatty()
    last = ""
    while True:
        line = _bar(stage, nodes)
        shown = line if tty else line.split("]", 1)[1].split("%", 1)[1]  # a log: states only
        if shown != last:
            click.echo(("\r" + line) if tty else line, nl=not tty)
            last = shown
        failed = [p for p in nodes if p.failed]
        if failed and stage == "canaries":
            raise Halted(f"rollout halted: canary {failed[0].name} {failed[0].failed}; "
                         f"the other nodes were not updated")
        now = time.monotonic()
        silent = [p for p in nodes if watch_s and p.confirmed_at is not None
                  and not p.reported_after and now - p.confirmed_at > watch_s]
        if silent:
            raise Halted(f"rollout halted: canary {silent[0].name} runs "
                         f"{rollout.bundle.version} but has not reported in {watch_s:g} s; "
                         f"the other nodes were not updated")
        done = all(p.failed or (p.confirmed_at is not None
                                and (p.reported_after or not watch_s)) for p in nodes)
        if done:
            if tty:
                click.echo("")
            if failed:
                raise click.ClickException("; ".join(f"{p.name} {p.failed}" for p in failed))
            return
        if now > deadline:
            late = [p.name for p in nodes if p.confirmed_at is None]
            raise Halted(f"rollout halted: {', '.join(late)} did not confirm "
                         f"{rollout.bundle.version} within {timeout_s:g} s")
        rollout.changed.clear()
        try:
            await asyncio.wait_for(rollout.changed.wait(), 1.0)
        except TimeoutError:
            pass
