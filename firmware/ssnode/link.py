"""Link layer: the serial transport, and stop-and-wait delivery of the uplink queue.

A transport has `async write(data)` and `async read() -> bytes` (the next chunk of the
stream). `SerialTransport` is the link UART; `ssnode/ble_link.py` offers the same two methods
over BLE. `Link` sends the queue's head, waits for its ACK and retransmits the identical
bytes with a capped, jittered exponential backoff (SPEC.md §6.1); incoming bytes are deframed
and handed to `on_frame`.
"""

import asyncio
import random
import time

from micropython import const

from streetsense.protocol import Deframer

ACK_TIMEOUT_MS = const(1000)  # first wait for an ACK; doubles per retry up to retry_max_s
_READ_CHUNK = const(256)


class SerialTransport:
    def __init__(self, uart):
        self._uart = uart
        self._reader = asyncio.StreamReader(uart)
        self._writer = asyncio.StreamWriter(uart, {})

    async def write(self, data):
        self._writer.write(data)
        await self._writer.drain()

    async def read(self):
        data = self._uart.read()  # bytes the driver buffered beyond the last chunk
        while not data:
            data = await self._reader.read(_READ_CHUNK)
        return data


class Link:
    """Counters (STATUS `link`): `tx` frames sent the first time, `retries` resends, `acked`,
    `rx` frames received, `rx_bad` undecodable ones."""

    def __init__(self, transport, queue, on_frame, retry_max_s=30):
        self.transport = transport
        self.queue = queue
        self.retry_max_ms = retry_max_s * 1000
        self.counters = {"tx": 0, "retries": 0, "acked": 0, "rx": 0, "rx_bad": 0}
        self._on_frame = on_frame
        self._wake = asyncio.Event()
        self._heard = False
        self._deframer = Deframer()

    def wake(self):
        """A new frame is queued: send it if the link is idle."""
        self._wake.set()

    def heard_gateway(self):
        """An authenticated downlink arrived: the gateway is there, resend without waiting."""
        self._heard = True
        self._wake.set()

    def ack(self, boot, seq):
        if self.queue.ack(boot, seq):
            self.counters["acked"] += 1
            self._wake.set()

    async def send_loop(self):
        timeout_ms = ACK_TIMEOUT_MS
        sent = None  # (boot, seq) of the frame last written
        while True:
            head = self.queue.head()
            if head is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            if (head[0], head[1]) == sent:
                self.counters["retries"] += 1
            else:
                self.counters["tx"] += 1
                timeout_ms = ACK_TIMEOUT_MS
                sent = (head[0], head[1])
            self._heard = False
            await self.transport.write(head[2])
            timeout_ms = await self._await_ack(sent, timeout_ms)

    async def _await_ack(self, sent, timeout_ms):
        """Wait until `sent` is acknowledged or it is time to resend; the next timeout."""
        # Equal jitter: half the backoff fixed, half random, so nodes that lost the gateway
        # together do not come back in lockstep.
        wait_ms = timeout_ms // 2 + random.getrandbits(16) * timeout_ms // 131072
        deadline = time.ticks_add(time.ticks_ms(), wait_ms)
        while True:
            if self._heard:
                return ACK_TIMEOUT_MS
            head = self.queue.head()
            if head is None or (head[0], head[1]) != sent:
                return timeout_ms
            left_ms = time.ticks_diff(deadline, time.ticks_ms())
            if left_ms <= 0:
                return min(timeout_ms * 2, self.retry_max_ms)
            self._wake.clear()
            try:
                await asyncio.wait_for_ms(self._wake.wait(), left_ms)
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython has no builtin one)
                pass

    async def receive_loop(self):
        while True:
            for item in self._deframer.feed(await self.transport.read()):
                if isinstance(item, Exception):
                    self.counters["rx_bad"] += 1
                else:
                    self.counters["rx"] += 1
                    self._on_frame(item)
