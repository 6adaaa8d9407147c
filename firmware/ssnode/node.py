"""The node core: identity, clock, uplink messages, downlink acceptance, controlled resets.

The kind apps (ssnode/aq_node.py, ssnode/traffic_node.py) see this object as `node`:
`config`, `timestamp()`, `send_data()`, `send_event()`, `queue_pressure()`, `faults`, `log()`.
"""

import asyncio
import gc
import sys
import time
from binascii import unhexlify

from micropython import const

from streetsense.protocol import ProtocolError, parse_frame
from streetsense.protocol import messages as m
from streetsense.protocol.frame import FLAG_ACK_REQ, Frame

from .control import Control
from .link import Link

FIRMWARE_VERSION = "0.1.0"
_LEVELS = {3: "E", 4: "W", 6: "I", 7: "D"}
_RESULT_WAIT_MS = const(5000)  # how long a RESULT may take to be acked before a reset
CAPABILITIES = ["spool", "time", "config", "reboot", "identify", "factory_reset"]
_ACCEPTED = (m.TIME, m.CONFIG, m.COMMAND, m.OTA_BEGIN, m.OTA_CHUNK)  # downlinks, §6.4


class Clock:
    """Uptime that survives ticks_ms() wrapping (ESP32: every 12.4 days, if read at least
    every 6 days: the supervisor reads it every second), and UTC once a TIME is applied."""

    def __init__(self):
        self._last = time.ticks_ms()
        self._uptime_ms = 0
        self._utc_offset_ms = None

    def uptime_ms(self):
        now = time.ticks_ms()
        self._uptime_ms += time.ticks_diff(now, self._last)
        self._last = now
        return self._uptime_ms

    def set_utc(self, utc_ms):
        self._utc_offset_ms = utc_ms - self.uptime_ms()

    def timestamp(self):
        """(ts, clock): UTC seconds (clock 0) after a TIME, else uptime seconds (clock 1)."""
        up_ms = self.uptime_ms()
        if self._utc_offset_ms is None:
            return up_ms // 1000, m.CLOCK_UPTIME
        return (self._utc_offset_ms + up_ms) // 1000, m.CLOCK_UTC


class Node:
    def __init__(self, config, board, boot, transport, queue):
        self.config = config
        self.board = board
        self.boot = boot
        self.clock = Clock()
        self.faults = {}  # sensor name -> fault text, sent in STATUS
        self.app = None  # the kind app, once loaded
        self.ota = None  # the update receiver (ssnode/ota.py), on a provisioned node
        self.link = Link(transport, queue, self.on_frame, config["retry_max_s"])
        self.control = Control(self)
        self.rx_dropped = 0  # downlinks refused by the SPEC §6.4 rules
        self.failure = None  # why a task ended, once one has
        self.tasks = []  # the long-lived tasks (app.run)
        self._set_identity(config["node_id"], config["key"])
        self._seq = 1  # seq 0 is the HELLO's, whenever it is built: it goes out first
        self._downlink_seq = 0  # highest downlink seq accepted in this boot
        self._acked_seq = -1  # highest seq of this boot the gateway acknowledged
        self._frame = Frame(m.HELLO, 0, 0, 0, None, FLAG_ACK_REQ)  # reused for every uplink

    def _set_identity(self, node_id, key_hex):
        """Provisioned with both, else the factory node 0 (SPEC.md §6.6)."""
        self.key = unhexlify(key_hex) if node_id and key_hex else None
        self.node_id = node_id if self.key is not None else 0

    @property
    def provisioned(self):
        return self.key is not None

    # -- API for the kind apps -------------------------------------------------------------
    def timestamp(self):
        return self.clock.timestamp()

    def send_data(self, readings, interval_s=None):
        ts, clock = self.clock.timestamp()
        body = {1: ts, 2: clock, 4: readings}
        if interval_s is not None:
            body[3] = interval_s
        self._send(m.DATA, body)

    def send_event(self, code, args=None):
        ts, clock = self.clock.timestamp()
        body = {1: ts, 2: clock, 3: code}
        if args:
            body[4] = args
        self._send(m.EVENT, body)

    def queue_pressure(self):
        return self.link.queue.pressure()

    def log(self, level, message):
        """A console line; warnings and errors also go to the gateway as LOG frames."""
        print(_LEVELS.get(level, "?"), message)
        if level <= m.LOG_WARNING and self.provisioned:
            ts, clock = self.clock.timestamp()
            self._send(m.LOG, {1: level, 2: message, 3: ts, 4: clock})

    # -- uplinks ---------------------------------------------------------------------------
    def _send(self, mtype, body, hello=False):
        """Encode (and sign) a frame of this boot and queue it; returns its seq."""
        frame = self._frame
        frame.type = mtype
        frame.flags = FLAG_ACK_REQ
        frame.node_id = self.node_id
        frame.boot = self.boot
        frame.seq = seq = 0 if hello else self._seq
        frame.body = body
        wire = frame.encode(self.key)
        if not hello:
            self._seq += 1
        self.link.queue.push(self.boot, seq, wire, hello)
        self.link.wake()
        return seq

    def hello(self, sensors, extra=()):
        caps = CAPABILITIES + list(extra) if self.provisioned else ["factory"]
        self._send(m.HELLO, {
            1: self.config["kind"], 2: FIRMWARE_VERSION, 3: [1, 0], 4: sensors,
            5: self.board.reset_cause(), 6: self.boot, 7: caps, 8: self.clock.uptime_ms(),
        }, hello=True)  # fmt: skip

    def status(self):
        ts, clock = self.clock.timestamp()
        link = dict(self.link.counters)
        link["rx_dropped"] = self.rx_dropped
        link["ram"], link["spool_bytes"], link["lost"] = self.link.queue.counts()
        gc.collect()
        body = {1: self.clock.uptime_ms() // 1000, 2: gc.mem_free(), 3: link, 5: ts, 6: clock}
        if self.faults:
            body[4] = self.faults
        counters = getattr(self.app, "counters", None)  # a kind app's own (traffic_node.py)
        if counters is not None:
            body[7] = counters()
        self._send(m.STATUS, body)

    def result(self, request, code, message=None, data=None):
        body = {1: request, 2: code}
        if message:
            body[3] = message
        if data:
            body[4] = data
        return self._send(m.RESULT, body)

    async def status_loop(self):
        while True:
            await asyncio.sleep(self.config["status_interval_s"])
            self.status()

    # -- downlinks (SPEC.md §6.4; factory state §6.6) --------------------------------------
    def on_frame(self, raw):
        try:
            frame = parse_frame(raw, self.key)  # without a key the tag is not checked
        except ProtocolError:
            self.rx_dropped += 1
            return
        if frame.node_id != self.node_id or (self.key is None and frame.signed):
            self.rx_dropped += 1
            return
        body = frame.body
        if frame.type == m.ACK:
            if body[1] == self.boot and body[2] > self._acked_seq:
                self._acked_seq = body[2]
                if self.ota is not None:  # the HELLO (seq 0) is acknowledged
                    self.ota.hello_acked()
            self.link.ack(body[1], body[2])
            return
        accepted = _ACCEPTED if self.key is not None else (m.CONFIG,)
        if (frame.type not in accepted or frame.boot != self.boot
                or frame.seq <= self._downlink_seq):  # fmt: skip
            self.rx_dropped += 1
            return
        self._downlink_seq = frame.seq
        self.link.heard_gateway()
        if frame.type == m.TIME:
            self.clock.set_utc(body[1])
            return
        if frame.type == m.OTA_BEGIN or frame.type == m.OTA_CHUNK:
            self._ota_frame(frame.type, body)
            return
        try:
            if frame.type == m.CONFIG:
                self.control.config(body[1], body[2])
            else:
                self.control.command(body[1], body[2], body.get(3) or {})
        except Exception as exc:  # a failing app hook answers FAILED, the link stays up
            sys.print_exception(exc)
            self.result(body[1], m.RESULT_FAILED, repr(exc))

    def _ota_frame(self, mtype, body):
        if self.ota is None:
            self.rx_dropped += 1
            return
        try:
            if mtype == m.OTA_BEGIN:
                self.ota.begin(body)
            else:
                self.ota.chunk(body)
        except OSError as exc:  # the flash is full or failing: say so, keep running
            self.ota.fail(f"flash: {exc!r}")
        except MemoryError:  # a fragmented heap: what is on flash stays, the chunk comes again
            gc.collect()
            self.ota.status(m.OTA_RECEIVING)

    def send_ota_status(self, body):
        return self._send(m.OTA_STATUS, body)

    # -- identity changes and resets -------------------------------------------------------
    def provision(self, node_id, key_hex):
        """Become node `node_id`: what was queued as the factory node can never be delivered."""
        self.link.queue.clear()
        self._set_identity(node_id, key_hex)

    async def restart(self, after_seq=None, wipe=False):
        """Controlled reset: let the RESULT `after_seq` be acknowledged (a few seconds at most),
        keep the queue on flash (or, with `wipe`, drop it with the identity), then reset."""
        if after_seq is not None:
            deadline = time.ticks_add(time.ticks_ms(), _RESULT_WAIT_MS)
            while self._acked_seq < after_seq and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                await asyncio.sleep_ms(20)
        if wipe:
            self.link.queue.clear()
        else:
            self.link.queue.flush()
        print("I reset")
        self.board.reset()

    async def run_task(self, name, coro):
        """Run one long-lived task; if it ends, record why (the supervisor then resets)."""
        try:
            await coro
            self.failure = f"task {name} ended"
        except Exception as exc:  # any failure of a task ends in a controlled reset
            sys.print_exception(exc)
            self.failure = f"task {name} failed: {exc!r}"

    async def supervise(self, wdt_timeout_ms):
        """Feed the watchdog while every task runs. A task that ended means a controlled reset
        (the queue is kept on flash); a hung event loop means the watchdog bites."""
        wdt = self.board.watchdog(wdt_timeout_ms)
        while self.failure is None:
            self.clock.uptime_ms()
            wdt.feed()
            await asyncio.sleep_ms(1000)
        self.log(m.LOG_ERROR, self.failure)
        await self.restart()
