"""A kind app for the node-core tests, staged onto the emulated flash as ssnode/test_node.py.

Kind "test": sensor "fake". At start it sends `test_burst` DATA frames at once (reading: the
frame's index on pm2_5, exponent 0), then one DATA per `report_interval_s` with the reading
`test_value`. Setting `test_value` (int) is its own; command `echo` answers OK with its args.
"""

import asyncio

from streetsense.protocol.messages import channel

_PM2_5 = 2


class App:
    def __init__(self, node, board):
        self.node = node
        self.sensors = ["fake"]

    def setting_error(self, name, value):
        if name == "test_value":
            return None if isinstance(value, int) else "integer"
        return "unknown setting"

    def reconfigure(self):
        self.node.log(6, f"test app reconfigured: {self.node.config}")

    def command(self, name, args):
        if name == "echo":
            return (0, None, args)
        return None

    async def run(self):
        node = self.node
        for i in range(node.config.get("test_burst", 0)):
            node.send_data([[channel(_PM2_5), 0, i]], 0)
            await asyncio.sleep_ms(0)
        while True:
            await asyncio.sleep(node.config["report_interval_s"])
            node.send_data([[channel(_PM2_5), 0, node.config.get("test_value", 0)]],
                           node.config["report_interval_s"])
