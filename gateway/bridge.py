"""The gateway's bridge API over MQTT, in the manner of Zigbee2MQTT's ``bridge/...`` topics.

Under ``<prefix>/<site>/_gateway/<id>/``:

* ``nodes`` (retained): the registry's nodes (name, id, kind, link, location, enabled; never
  a key), published at every connection and whenever the registry changes;
* ``request/<action>``: a request from an operator, ``response/<action>``: the answer, with
  the request's ``id`` and MQTT 5 correlation data. Actions: ``node/rename`` (``{"from":
  "HN-0042", "to": "HN-0099"}``), ``node/remove`` (``{"node": "HN-0042", "confirm":
  "HN-0042"}``), ``log_level`` (``{"level": "DEBUG"}``).

Requests have authority: they are signed with the site's operator key exactly as commands
are (`command_auth`, docs/mqtt.md "Commands"; the same checker and nonce memory), and the
signature covers the topic, so one gateway's request cannot be replayed to another. A
retained request is never run. Renames and removals edit the registry file (`registry`:
locked, checked as a whole, atomic); the gateway then reloads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from . import payloads
from .command_auth import CommandAuth
from .commands import parse_request
from .config import LOG_LEVELS
from .logbudget import LogBudget
from .publisher import Publisher
from .registry import NodeInfo, Registry, RegistryError, remove_node, rename_node
from .topics import Topics

__all__ = ["ACTIONS", "Bridge"]

log = logging.getLogger("streetsense.gateway.bridge")

ACTIONS = ("node/rename", "node/remove", "log_level")
Answer = tuple[str, str, dict[str, Any]]  # (code, message, data)


class Bridge:
    """Publishes the node list and answers bridge requests. ``renamed(old name, node)`` and
    ``removed(node)`` are called once the registry file says so and is reloaded."""

    def __init__(self, topics: Topics, registry: Registry, publisher: Publisher, *,
                 auth: CommandAuth, reload_registry: Callable[[], None],
                 renamed: Callable[[str, NodeInfo], None],
                 removed: Callable[[NodeInfo], None],
                 clock: Callable[[], float]) -> None:
        self._topics = topics
        self._registry = registry
        self._publisher = publisher
        self._auth = auth
        self._reload_registry = reload_registry
        self._renamed = renamed
        self._removed = removed
        self._clock = clock
        self.requests = 0
        self.refused = 0
        self._log = LogBudget(log)  # a flood of unsigned requests cannot flood the log

    @property
    def subscription(self) -> str:
        return self._topics.gateway("request/#")

    def handles(self, topic: str) -> bool:
        return topic.startswith(self._topics.gateway("request/"))

    def publish_nodes(self) -> None:
        """The retained node list, now and after every reconnect."""
        nodes = [{"name": n.name, "id": n.id, "kind": n.kind, "link": n.link,
                  "location": n.location, "enabled": n.enabled} for n in self._registry]
        self._publisher.set_retained(self._topics.gateway("nodes"), payloads.encode(
            {"gateway": self._topics.gateway_id, "site": self._topics.site, "nodes": nodes}))

    async def on_message(self, message: aiomqtt.Message) -> None:
        """One request on ``.../request/<action>``: checked, run, answered."""
        topic = message.topic.value
        action = topic[len(self._topics.gateway("request/")):]
        self.requests += 1
        correlation = None
        if message.properties is not None and hasattr(message.properties, "CorrelationData"):
            correlation = bytes(message.properties.CorrelationData)
        request, refusal = parse_request(message.payload)
        if refusal is None:
            if action not in ACTIONS:
                refusal = ("BAD_REQUEST", f"unknown request {action!r}: one of "
                           f"{', '.join(ACTIONS)}")
            elif message.retain:
                refusal = ("REPLAYED", "a retained request is never run: clear it by "
                           "publishing an empty retained message on its topic")
            else:
                refusal = self._auth.refusal(topic, request)
        code, text, data = (*refusal, {}) if refusal is not None else self._run(action, request)
        if code != "OK":
            self.refused += 1
        self._log.log(logging.INFO if code == "OK" else logging.WARNING,
                      "bridge request %r: %s, %s", action, code, text)
        answer: dict[str, Any] = {"request": action, "code": code, "message": text,
                                  "data": data, "gateway": self._topics.gateway_id,
                                  "at": payloads.iso_utc(self._clock(), ms=True)}
        if request.get("id") is not None:
            answer["id"] = str(request["id"])
        await self._publisher.publish_now(self._topics.gateway(f"response/{action}"),
                                          payloads.encode(answer), correlation=correlation)

    def _run(self, action: str, request: dict[str, Any]) -> Answer:
        if action == "log_level":
            return _set_level(request.get("level"))
        name = request.get("from" if action == "node/rename" else "node")
        if not isinstance(name, str) or self._registry.by_name(name) is None:
            return "NOT_FOUND", f"no node named {json.dumps(name)} in the registry", {}
        path = self._registry.path
        if action == "node/remove":
            if request.get("confirm") != name:
                return ("CONFIRM_REQUIRED", f"removing {name} drops it and its key from the "
                        f'registry: send "confirm": "{name}" with it', {})
            try:
                node = remove_node(path, name)
            except (RegistryError, OSError) as exc:
                return "FAILED", f"the registry was not changed: {_why(exc, path)}", {}
            self._reload_registry()
            self._removed(node)
            return "OK", f"{name} removed from the registry", {"node": name, "id": node.id}
        new_name = request.get("to")
        if not isinstance(new_name, str):
            return "BAD_ARGS", '"to" must be the new name (a string)', {}
        try:
            node = rename_node(path, name, new_name)
        except (RegistryError, OSError) as exc:
            code = "BAD_ARGS" if isinstance(exc, RegistryError) else "FAILED"
            return code, f"the registry was not changed: {_why(exc, path)}", {}
        self._reload_registry()
        self._renamed(name, node)
        return "OK", f"{name} is now {new_name}", {"from": name, "to": new_name, "id": node.id}


def _set_level(level: Any) -> Answer:
    if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
        return "BAD_ARGS", f'"level" must be one of {", ".join(LOG_LEVELS)}', {}
    root = logging.getLogger()
    before = logging.getLevelName(root.getEffectiveLevel())
    root.setLevel(level.upper())
    return ("OK", f"log level {level.upper()} (was {before}) until a restart or SIGHUP with "
            "[log] level set", {"level": level.upper(), "was": before})


def _why(exc: Exception, path: Path) -> str:
    if isinstance(exc, RegistryError):
        return "; ".join(problem.message for problem in exc.problems)
    assert isinstance(exc, OSError)
    return (f"cannot write the registry {path} ({exc.strerror}): the gateway's user needs "
            f"write access to its folder {path.parent}, or edit the file by hand and reload "
            f"the gateway (SIGHUP)")
