"""One gateway publishes a node at a time, even when several hear it: ownership by claim.

A site can have gateways whose radios overlap (BLE) or a standby gateway beside the active
one. With ``[ownership] enabled``, the node's retained ``state`` (``<prefix>/<site>/<node>/
state``) names its owner: ``gateway``, with ``claimed_at`` (when it claimed the node) and
``replay`` (the node's replay floor: boot -> highest seq the owner committed). Every gateway
subscribes to its site's node states and to the gateways' own states (online, or offline by
their Will). A gateway journals, ACKs and publishes a node's frames only while it owns it:

* it may claim a node nobody owns, a node whose owner marked it offline (silent, stopped),
  a node whose owner's own state is offline (the owner died or lost the broker: its Will),
  and a node it owned before a restart; not before ``claim_after_s`` after its first
  subscription, so that the retained states have arrived;
* claiming, it starts from the retained replay floor (and from what it heard itself), so a
  frame captured at the old owner is a replay at the new one;
* a standby hears frames but neither journals nor ACKs them: an ACK would make the node
  drop a frame the owner never got. It applies the replay rule to them, so its floor follows;
* two gateways claiming at once: the earlier ``claimed_at`` wins (then the lower gateway id);
  the loser steps down without publishing anything, the winner publishes its claim again.

Nothing here does I/O: the session asks and tells, the publisher delivers the messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .topics import Topics

__all__ = ["Claim", "Ownership"]

log = logging.getLogger("streetsense.gateway.ownership")


@dataclass
class Claim:
    """A node's owner as its retained state says."""

    gateway: str
    online: bool
    claimed_at: float
    replay: dict[int, int] = field(default_factory=dict)


class Ownership:
    """This gateway's view of who owns the site's nodes, and its own claims."""

    def __init__(self, gateway_id: str, *, prefix: str, site: str, claim_after_s: float = 2.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.gateway_id = gateway_id
        self._topics = Topics(prefix, site)
        self.claim_after_s = claim_after_s
        self._clock = clock
        self._monotonic = monotonic
        self.claims: dict[str, Claim] = {}  # node name -> its retained state's claim
        self.gateways: dict[str, bool] = {}  # gateway id -> online, from its retained state
        self.mine: dict[str, float] = {}  # node name -> claimed_at of this gateway's claim
        self._synced_at: float | None = None  # monotonic time of the first subscription

    @property
    def subscriptions(self) -> list[str]:
        return [self._topics.node("+", "state"), self._topics.any_gateway("state")]

    def subscribed(self) -> None:
        """The subscriptions are in place: claims may start ``claim_after_s`` from now."""
        if self._synced_at is None:
            self._synced_at = self._monotonic()

    def owns(self, node: str) -> bool:
        return node in self.mine

    def owner(self, node: str) -> str | None:
        """The gateway that owns ``node`` (this one included), None if nobody does."""
        if node in self.mine:
            return self.gateway_id
        claim = self.claims.get(node)
        return claim.gateway if claim is not None and self._alive(claim) else None

    def may_claim(self, node: str) -> bool:
        """Whether this gateway may take ``node`` now."""
        if node in self.mine:
            return True
        if self._synced_at is None or self._monotonic() - self._synced_at < self.claim_after_s:
            return False
        claim = self.claims.get(node)
        return claim is None or claim.gateway == self.gateway_id or not self._alive(claim)

    def _alive(self, claim: Claim) -> bool:
        return claim.online and self.gateways.get(claim.gateway, True)

    def claim(self, node: str) -> dict[int, int]:
        """Take ``node``; returns the replay floor to start from (the retained one)."""
        self.mine[node] = self._clock()
        previous = self.claims.get(node)
        log.info("node %s claimed (owner was %s)", node,
                 previous.gateway if previous is not None else "nobody")
        return dict(previous.replay) if previous is not None else {}

    def claim_fields(self, node: str, replay: dict[int, int]) -> dict[str, Any]:
        """What this gateway's retained state of ``node`` carries besides the usual."""
        return {"claimed_at": round(self.mine.get(node, self._clock()), 3),
                "replay": {str(boot): seq for boot, seq in sorted(replay.items())}}

    def on_state(self, topic: str, payload: bytes) -> tuple[str, str] | None:
        """A retained state seen on the broker. Returns (node, "lost") when another gateway's
        earlier claim takes a node from this one, (node, "reassert") when a later claim
        overwrote this gateway's retained state; None otherwise."""
        gateway_state = self._topics.gateway_sub(topic)
        node_state = self._topics.node_sub(topic)
        if (gateway_state or node_state or ("", ""))[1] != "state":
            return None
        try:
            state = json.loads(payload) if payload else {}
        except ValueError:
            return None
        if not isinstance(state, dict):
            return None
        if gateway_state is not None:
            self.gateways[gateway_state[0]] = state.get("state") == "online"
            return None
        assert node_state is not None
        node, gateway = node_state[0], state.get("gateway")
        if not isinstance(gateway, str):
            return None
        claim = Claim(gateway, state.get("state") == "online",
                      float(state.get("claimed_at") or 0.0), _replay(state.get("replay")))
        self.claims[node] = claim
        if gateway == self.gateway_id or node not in self.mine or not claim.online:
            return None
        if (claim.claimed_at, gateway) < (self.mine[node], self.gateway_id):
            del self.mine[node]
            log.warning("node %s: gateway %s claimed it first; this gateway stands by",
                        node, gateway)
            return node, "lost"
        return node, "reassert"


def _replay(value: Any) -> dict[int, int]:
    if not isinstance(value, dict):
        return {}
    floor = {}
    for boot, seq in value.items():
        if str(boot).isdigit() and isinstance(seq, int) and not isinstance(seq, bool):
            floor[int(boot)] = seq
    return floor
