"""The MQTT topic layout (docs/mqtt.md), the one place that spells it: the gateway publishes
and subscribes with it, the tools send commands with it, the rig and the tests watch with it.

- ``<prefix>/<site>/<node>/<sub>``: a node's messages (``data``, ``event``, ``status``,
  ``log``, ``state``, ``cmd/<name>`` and its ``cmd/<name>/result``, derived values);
- ``<prefix>/<site>/_gateway/<id>/<sub>``: a gateway's own (``state``, ``health``, ``nodes``,
  ``request/<action>`` and its ``response/<action>``).

``prefix`` may have several levels (``city/streetsense``); ``site``, node names and gateway
ids have one (the config and the registry check that).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GATEWAY_LEVEL", "Topics"]

GATEWAY_LEVEL = "_gateway"  # the level under a site where the gateways' own topics start


@dataclass(frozen=True)
class Topics:
    """The topics of one site, seen from gateway ``gateway_id`` (empty: no gateway in mind)."""

    prefix: str
    site: str
    gateway_id: str = ""

    @property
    def site_base(self) -> str:
        """``<prefix>/<site>/``: every topic of the site starts with it."""
        return f"{self.prefix}/{self.site}/"

    @property
    def everything(self) -> str:
        """``<prefix>/<site>/#``: the filter for every message of the site."""
        return f"{self.prefix}/{self.site}/#"

    def node(self, name: str, sub: str) -> str:
        """``<prefix>/<site>/<name>/<sub>`` (``name`` may be ``+``)."""
        return f"{self.prefix}/{self.site}/{name}/{sub}"

    def command(self, node: str, name: str) -> str:
        """``.../<node>/cmd/<name>``: where a command for ``node`` is requested."""
        return self.node(node, f"cmd/{name}")

    def result(self, node: str, name: str) -> str:
        """``.../<node>/cmd/<name>/result``: where its result is published."""
        return self.node(node, f"cmd/{name}/result")

    @property
    def gateway_base(self) -> str:
        """``<prefix>/<site>/_gateway/<id>``: this gateway's own topics start here."""
        return f"{self.prefix}/{self.site}/{GATEWAY_LEVEL}/{self.gateway_id}"

    def gateway(self, sub: str) -> str:
        """``<prefix>/<site>/_gateway/<id>/<sub>``."""
        return f"{self.gateway_base}/{sub}"

    def any_gateway(self, sub: str) -> str:
        """``<prefix>/<site>/_gateway/+/<sub>``: the filter for every gateway's ``sub``."""
        return f"{self.prefix}/{self.site}/{GATEWAY_LEVEL}/+/{sub}"

    def node_sub(self, topic: str) -> tuple[str, str] | None:
        """(node, sub) of a node's topic of this site; None for a gateway's topic, another
        site's or one too short."""
        if not topic.startswith(self.site_base):
            return None
        node, _, sub = topic[len(self.site_base):].partition("/")
        if not node or not sub or node == GATEWAY_LEVEL:
            return None
        return node, sub

    def gateway_sub(self, topic: str) -> tuple[str, str] | None:
        """(gateway id, sub) of a gateway's own topic of this site; None otherwise."""
        head = f"{self.site_base}{GATEWAY_LEVEL}/"
        if not topic.startswith(head):
            return None
        gateway, _, sub = topic[len(head):].partition("/")
        if not gateway or not sub:
            return None
        return gateway, sub
