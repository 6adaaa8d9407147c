"""What the gateway knows about one node: its replay state, link, birth and clock anchors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .registry import NodeInfo
from .transports.base import Link

__all__ = ["NodeState"]


@dataclass
class NodeState:
    """What the gateway knows about one node."""

    node_id: int
    info: NodeInfo
    boots: dict[int, int] = field(default_factory=dict)  # incl. frames not yet committed
    committed: dict[int, int] = field(default_factory=dict)  # as in the journal
    current_boot: int | None = None
    link: Link | None = None
    last_seen: float | None = None
    online: bool = False
    birth: dict[str, Any] | None = None
    anchors: dict[int, float] = field(default_factory=dict)  # boot -> UTC at uptime 0
    time_sent_at: float = 0.0  # monotonic
    floor_sent: tuple[dict[int, int], float] = ({}, 0.0)  # replay floor last in the state
