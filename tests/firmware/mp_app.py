"""MicroPython side of the kind-app tests: one app (ssnode/aq_node.py or traffic_node.py) on the
emulated board with a stand-in for the node core that prints what the app hands it.

argv: board shim dir, firmware dir, staged protocol dir, app module, config JSON file.
Output, one JSON object a line: {"data": hex of an unsigned DATA frame, "t_ms": ...},
{"event": hex of an EVENT frame}, {"log": [level, text]}, {"faults": {...}} whenever they change,
{"result": [...]}. Input lines: {"command": name, "args": {...}}, {"config": {...}} (applied
after setting_error, as the core does), {"pressure": 0.0..1.0} (the queue's fill).
"""

import sys

sys.path[:0] = sys.argv[1:4]

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from binascii import hexlify  # noqa: E402

from ssnode import hw  # noqa: E402
from ssnode.config import DEFAULTS  # noqa: E402

from streetsense.protocol import messages as m  # noqa: E402
from streetsense.protocol.frame import Frame  # noqa: E402


def emit(obj):
    print(json.dumps(obj))


class PrintingNodeCore:
    """The node core API the kind apps use (ssnode/node.py), with frames printed, not queued."""

    def __init__(self, config):
        self.config = config
        self.faults = {}
        self.pressure = 0.0
        self._seq = 0
        self._start = time.ticks_ms()
        self._faults_seen = {}

    def timestamp(self):
        return time.ticks_diff(time.ticks_ms(), self._start) // 1000, m.CLOCK_UPTIME

    def _frame(self, kind, mtype, body):
        self._seq += 1
        wire = Frame(mtype, 42, 1, self._seq, body).encode()
        emit({kind: hexlify(wire).decode(), "t_ms": time.ticks_diff(time.ticks_ms(), self._start)})
        self.report_faults()

    def send_data(self, readings, interval_s=None):
        ts, clock = self.timestamp()
        body = {1: ts, 2: clock, 4: readings}
        if interval_s is not None:
            body[3] = interval_s
        self._frame("data", m.DATA, body)

    def send_event(self, code, args=None):
        ts, clock = self.timestamp()
        body = {1: ts, 2: clock, 3: code}
        if args:
            body[4] = args
        self._frame("event", m.EVENT, body)

    def queue_pressure(self):
        return self.pressure

    def log(self, level, message):
        emit({"log": [level, message]})
        self.report_faults()

    def report_faults(self):
        if self.faults != self._faults_seen:
            self._faults_seen = dict(self.faults)
            emit({"faults": self._faults_seen})


async def control(node, app):
    reader = asyncio.StreamReader(sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        msg = json.loads(line)
        if "command" in msg:
            answer = app.command(msg["command"], msg.get("args") or {})
            if answer is not None and not isinstance(answer, tuple):
                answer = await answer  # a command that takes time (calibrate co2)
            emit({"result": answer})
        elif "config" in msg:
            errors = {k: app.setting_error(k, v) for k, v in msg["config"].items()}
            errors = {k: e for k, e in errors.items() if e}
            if not errors:
                node.config.update(msg["config"])
                app.reconfigure()
            emit({"config_errors": errors})
        elif "pressure" in msg:
            node.pressure = msg["pressure"]


async def main():
    config = dict(DEFAULTS)  # as ssnode/config.py's load() does
    with open(sys.argv[5]) as f:
        config.update(json.load(f))
    node = PrintingNodeCore(config)
    module = __import__("ssnode." + sys.argv[4], None, None, ["App"])
    app = module.App(node, hw.Board())
    emit({"sensors": app.sensors})
    task = asyncio.create_task(app.run())
    await control(node, app)  # until stdin closes
    task.cancel()


asyncio.run(main())
