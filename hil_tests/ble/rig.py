"""The BLE test rig: a virtual radio on its own loop in a thread, with a synchronous API.

Emulated boards reach it through the peripheral host (``board_endpoint()`` is the board
JSON's ``"ble"`` value); a gateway's bleak backend reaches it as HCI over TCP
(``central_transport()`` is a bumble transport spec for ``BumbleAdapter``). Range faults
(``set_in_range``) act on a board's address, derived from its ``unique_id``.
``BleLinkDriver`` is the HIL rig's link driver for such a board.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bumble import hci

from ..artefacts import FrameLog
from ..lifecycle import Managed
from .peripheral_host import PeripheralHost
from .radio import VirtualRadio, static_address

__all__ = ["BleLinkDriver", "BleRig", "board_address"]

_T = TypeVar("_T")
CENTRAL_SEED = bytes.fromhex("c0ffee00")  # + the central's number (2 bytes)


def board_address(unique_id: str) -> hci.Address:
    """The Bluetooth address the peripheral host gives a board with this ``unique_id`` (hex)."""
    return static_address(bytes.fromhex(unique_id))


class BleRig(Managed):
    """A ``VirtualRadio`` on its own event loop in a daemon thread, with a sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ble-radio", daemon=True)
        self._thread.start()
        self.radio: VirtualRadio = self.call(self._make())
        self._boards: PeripheralHost | None = None
        self._centrals = 0

    @staticmethod
    async def _make() -> VirtualRadio:
        return VirtualRadio()

    def _host(self) -> PeripheralHost:
        if self._boards is None:
            self._boards = PeripheralHost(self.radio)
            self.call(self._boards.start())
        return self._boards

    def board_endpoint(self) -> str:
        """``host:port`` for an emulated board's ``"ble"`` entry (the peripheral host)."""
        return self._host().endpoint

    def board_entries(self, unique_id: str) -> dict[str, str]:
        """Board JSON entries of an emulated board on this radio (``unique_id`` in hex)."""
        return {"ble": self.board_endpoint(), "unique_id": unique_id}

    def tap(self, address: hci.Address, feed: Callable[[str, bytes], None]) -> None:
        """``feed(direction, data)`` for every chunk the board at ``address`` notifies ("up")
        or receives ("down"); called on the radio's thread (``FrameLog.feed`` is fine)."""
        self._host().taps[address] = feed

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        """Run ``coro`` on the radio's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """Call a plain function on the radio's loop (bumble objects are not thread-safe)."""

        async def wrapper() -> _T:
            return function(*args)

        return self.call(wrapper())

    def central_transport(self) -> str:
        """A new controller for a gateway (each with its own address), as a bumble transport
        spec (HCI over TCP)."""
        self._centrals += 1
        address = static_address(CENTRAL_SEED + self._centrals.to_bytes(2, "big"))
        return self.call(self.radio.serve_hci(address))

    def set_in_range(self, address: hci.Address, in_range: bool) -> None:
        """Take a board (or any controller) out of range: its connections drop; or back."""
        self.run(self.radio.set_in_range, address, in_range)

    def close(self) -> None:
        if not self.loop.is_running():
            return
        if self._boards is not None:
            self.call(self._boards.close())
        self.call(self.radio.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class BleLinkDriver:
    """The rig's ``LinkDriver`` for a board on BLE: ``frames`` is its tapped stream,
    ``unplug``/``replug`` take it out of range and back.

    Line noise has no BLE counterpart: the link layer checks a CRC and retransmits every
    packet, so corrupted or dropped radio packets never reach the frame stream.
    """

    def __init__(self, rig: BleRig, unique_id: str) -> None:
        self.rig = rig
        self.address = board_address(unique_id)
        self.frames = FrameLog()
        self._bytes = {"up": 0, "down": 0}
        self._outages = 0
        rig.tap(self.address, self._feed)

    def _feed(self, direction: str, data: bytes) -> None:
        self._bytes[direction] += len(data)
        self.frames.feed(direction, data)

    async def set_faults(self, *, drop: float = 0.0, ber: float = 0.0,
                         delay_ms: int = 0) -> None:  # fmt: skip
        if drop or ber or delay_ms:
            raise NotImplementedError(
                "BLE's link layer retransmits until a packet's CRC checks: drops and bit "
                "errors never reach the frame stream (use unplug for an outage)"
            )

    async def unplug(self) -> None:
        self._outages += 1
        await asyncio.to_thread(self.rig.set_in_range, self.address, False)

    async def replug(self) -> None:
        await asyncio.to_thread(self.rig.set_in_range, self.address, True)

    async def counters(self) -> dict[str, int]:
        return {"bytes_up": self._bytes["up"], "bytes_down": self._bytes["down"],
                "outages": self._outages}  # fmt: skip
