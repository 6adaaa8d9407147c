"""The strategy: moves a board between its states, off → booted → provisioned (labgrid's split).

* ``off``: no power (needs the power driver).
* ``booted``: powered, and the node has said HELLO: seen on the link's frame tap after the
  rig switched it on, or (when the rig did not, e.g. a bench board found running) proven
  by its birth message at the gateway.
* ``provisioned``: the gateway knows the node (registry entry, right key) and has published
  its birth: ``state`` online with the node's current boot; settings the test asked for
  that the rig could not write at start are applied (CONFIG). Tests start from here.

A transition only does what is missing, so ``await strategy.transition("provisioned")`` is
cheap when the node is already online.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from streetsense.protocol import peek_node_id
from streetsense.protocol.messages import HELLO

from ..observer import MqttObserver, Observed
from .drivers import Board

__all__ = ["BoardStrategy", "GatewayTopics", "Status", "StrategyError"]


class Status(StrEnum):
    """The states a board moves between (a test may name one by its string)."""

    OFF = "off"
    BOOTED = "booted"
    PROVISIONED = "provisioned"


class StrategyError(RuntimeError):
    """A transition that this rig cannot make (e.g. ``off`` without a power driver)."""


class GatewayTopics(Protocol):
    """What the strategy needs to know of the gateway: where a node's messages appear, and
    how to sign a command for it."""

    def topic(self, node: str, sub: str) -> str:
        """``<prefix>/<site>/<node>/<sub>``."""

    def sign_command(self, node: str, name: str,
                     request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(topic, signed payload) of command ``name`` for ``node``."""


def is_online(message: Observed) -> bool:
    """Whether a ``state`` message says online (the gateway's birth payload is JSON)."""
    try:
        payload = message.json()
    except ValueError:
        return message.payload == b"online"
    if isinstance(payload, dict):
        return bool(payload.get("state") == "online" or payload.get("online") is True)
    return bool(payload == "online")


class BoardStrategy:
    """Drives one board through its states, using its drivers, the gateway and the observer."""

    def __init__(self, board: Board, gateway: GatewayTopics, observer: MqttObserver, *,
                 boot_timeout_s: float = 30.0) -> None:
        self.board = board
        self.gateway = gateway
        self.observer = observer
        self.boot_timeout_s = boot_timeout_s
        self.state: Status | None = None

    async def transition(self, state: Status | str) -> None:
        """Bring the board to ``state`` (a `Status`, or its name)."""
        try:
            state = Status(state)
        except ValueError:
            names = tuple(str(status) for status in Status)
            raise StrategyError(f"unknown state {state!r}; states are {names}") from None
        if state is Status.OFF:
            if self.board.power is None:
                raise StrategyError("this rig cannot switch the board off (no power driver)")
            await self.board.power.off()
        elif state is Status.BOOTED:
            await self._boot()
        else:
            await self._boot()
            await self.wait_birth()
            await self._apply_settings()
        self.state = state

    async def _boot(self) -> None:
        if self.state in (Status.BOOTED, Status.PROVISIONED):
            return
        if self.state is Status.OFF:
            # The rig cut the power: switch on and see the node's HELLO on the link.
            assert self.board.power is not None
            mark = len(self.board.link.frames.frames) if self.board.link else 0
            await self.board.power.on()
            if self.board.link is not None:
                await self.wait_hello(after=mark)
            return
        # State unknown (a fresh session): the node may have booted long before the test
        # looked; its birth at the gateway is the proof that it did.
        await self.wait_birth()

    async def _apply_settings(self) -> None:
        """Send the settings the rig could not write at start as a CONFIG, through MQTT and
        the gateway, and wait for the node's OK."""
        if not self.board.settings:
            return
        request = f"hil-settings-{self.observer.mark()}"
        topic, payload = self.gateway.sign_command(self.board.name, "config",
                                                   {"id": request,
                                                    "settings": self.board.settings})
        await self.observer.publish(topic, payload)
        result = await self.observer.expect(f"{topic}/result",
                                            lambda m: m.json().get("id") == request,
                                            timeout=self.boot_timeout_s)
        if result.json().get("code") != "OK":
            raise StrategyError(f"the node refused the test's settings {self.board.settings}: "
                                f"{result.json()}")
        self.board.settings = {}

    async def wait_hello(self, *, after: int = 0) -> None:
        """Wait for a HELLO from the node on the link tap (frames numbered from ``after``)."""
        link = self.board.link
        assert link is not None
        node_id = self.board.node_id
        await link.frames.wait(
            lambda f: f.raw is not None and f.raw[1] == HELLO
            and peek_node_id(f.raw) == node_id,
            timeout=self.boot_timeout_s, since=after)

    async def wait_birth(self, *, since: int = 0) -> Observed:
        """Wait for the node's ``state`` online on MQTT (from transcript index ``since``)."""
        return await self.observer.expect(self.gateway.topic(self.board.name, "state"),
                                          is_online, timeout=self.boot_timeout_s, since=since)
