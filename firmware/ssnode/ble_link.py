"""BLE transport of the node: a Nordic UART Service peripheral carrying the COBS frame stream.

Same two methods as the serial transport (`ssnode/link.py`): `await write(data)` and
`await read() -> bytes`. The central (the gateway) writes the RX characteristic 6E400002;
the node notifies on TX 6E400003; chunk boundaries mean nothing (SPEC.md §1, §1.3).

- Advertising carries the NUS UUID and the node's id and kind (manufacturer data, company
  0xFFFF, SPEC §1.3), so a gateway can ask its registry before it connects.
- Notifications are chunked to the negotiated ATT MTU - 3 (20 bytes at the default MTU 23,
  244 at 247). The central starts the MTU exchange; `mtu` is what the node offers.
- The stream starts once the central has written (the gateway writes a lone 0x00 after it
  subscribes): a notification sent before the central subscribed would be lost silently.
- `write` waits while no central is ready, so the link layer's stop-and-wait resumes the
  moment a gateway reconnects; a chunk cut short by a disconnect is dropped (the frame stays
  queued until acked and is resent whole, SPEC §6.1). After a disconnect the node advertises
  again.

The radio (`bluetooth.BLE()`) is injected; IRQs arrive scheduled on the main thread, as on
the ESP32, and reach the tasks through ThreadSafeFlags.
"""

import asyncio

import bluetooth
from micropython import const

from streetsense.protocol.advert import NUS_RX, NUS_SERVICE, NUS_TX, manufacturer_data

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)

ATT_DEFAULT_MTU = const(23)
_ATT_HEADER = const(3)  # opcode + handle in a notification
PREFERRED_MTU = const(247)  # 251-byte LL data length minus the L2CAP header
ADV_INTERVAL_US = const(100000)
_RX_VALUE_LEN = const(512)  # the RX value appends writes until read() takes them
_RX_LIMIT = const(1024)  # bytes held for read(); beyond it new bytes are dropped (counted)
_NOTIFY_RETRIES = const(50)  # ENOMEM (stack out of buffers) retries per chunk
_NOTIFY_RETRY_MS = const(10)

def advert(node_id, kind):
    """Advertising data (31 bytes): flags, the NUS UUID, manufacturer data with id and kind."""
    uuid_le = bytes(reversed(bytes.fromhex(NUS_SERVICE.replace("-", ""))))
    return (
        b"\x02\x01\x06"  # LE General Discoverable, BR/EDR not supported
        + b"\x11\x07" + uuid_le  # complete list of 128-bit service UUIDs
        + manufacturer_data(node_id, kind)  # id and kind (SPEC §1.3)
    )  # fmt: skip


class BleTransport:
    """NUS peripheral on `ble`. Counters: `connects`, `disconnects`, `rx_dropped` (bytes over
    the RX limit), `tx_cut` (bytes not sent because the central left mid-write)."""

    def __init__(self, ble, node_id, kind, mtu=PREFERRED_MTU, adv_interval_us=ADV_INTERVAL_US):
        self._ble = ble
        self._adv = advert(node_id, kind)
        name = f"SS-{node_id}"
        self._resp = bytes((len(name) + 1, 0x09)) + name.encode()  # complete local name
        self._adv_interval_us = adv_interval_us
        self._conn = None  # connection handle of the central
        self._ready = False  # the central has written: it is subscribed
        self.mtu = ATT_DEFAULT_MTU
        self._rx = bytearray()
        self._rx_flag = asyncio.ThreadSafeFlag()
        self._ready_flag = asyncio.ThreadSafeFlag()
        self.counters = {"connects": 0, "disconnects": 0, "rx_dropped": 0, "tx_cut": 0}
        ble.active(True)
        ble.config(mtu=mtu, gap_name=name)
        ble.irq(self._irq)
        ((self._tx_handle, self._rx_handle),) = ble.gatts_register_services((
            (bluetooth.UUID(NUS_SERVICE), (
                (bluetooth.UUID(NUS_TX), _FLAG_READ | _FLAG_NOTIFY),
                (bluetooth.UUID(NUS_RX), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE),
            )),
        ))  # fmt: skip
        ble.gatts_set_buffer(self._rx_handle, _RX_VALUE_LEN, True)
        self._advertise()

    def _advertise(self):
        self._ble.gap_advertise(self._adv_interval_us, self._adv, resp_data=self._resp)

    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self._conn = data[0]
            self._ready = False
            self.mtu = ATT_DEFAULT_MTU
            self.counters["connects"] += 1
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self._conn:
                self._conn = None
                self._ready = False
                self.counters["disconnects"] += 1
                self._advertise()
        elif event == _IRQ_GATTS_WRITE:
            if data[0] == self._conn and data[1] == self._rx_handle:
                chunk = self._ble.gatts_read(self._rx_handle)
                room = _RX_LIMIT - len(self._rx)
                if len(chunk) > room:
                    self.counters["rx_dropped"] += len(chunk) - room
                    chunk = chunk[:room]
                self._rx.extend(chunk)
                self._rx_flag.set()
                if not self._ready:
                    self._ready = True
                    self._ready_flag.set()
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self._conn:
                self.mtu = data[1]

    async def read(self):
        """The next bytes the central wrote (waits for them)."""
        while not self._rx:
            await self._rx_flag.wait()
        data = bytes(self._rx)
        self._rx[:] = b""
        return data

    async def write(self, data):
        """Notify `data` in MTU-3 chunks; waits until a central is connected and ready."""
        while not self._ready:
            await self._ready_flag.wait()
        conn = self._conn
        view = memoryview(data)
        sent = 0
        failures = 0
        while sent < len(view):
            if self._conn != conn:
                self.counters["tx_cut"] += len(view) - sent
                return
            step = self.mtu - _ATT_HEADER
            try:
                self._ble.gatts_notify(conn, self._tx_handle, view[sent : sent + step])
            except OSError:  # the stack is out of buffers (ENOMEM), or the central just left
                failures += 1
                if failures > _NOTIFY_RETRIES:
                    self.counters["tx_cut"] += len(view) - sent
                    return
                await asyncio.sleep_ms(_NOTIFY_RETRY_MS)
                continue
            failures = 0
            sent += step
            await asyncio.sleep_ms(0)  # let the other tasks (and IRQs) run between chunks


def transport(board, config):
    """The node's BLE transport (config `link` = "ble"). The radio is the `bluetooth.BLE()`
    singleton on every board, so `board` has nothing to add."""
    return BleTransport(bluetooth.BLE(), config["node_id"], config["kind"])
