"""Start-up: settings, boot counter, link, the kind app, and the tasks that run the node.

`main()` is what `main.py` calls. Order matters: the boot counter is incremented before the
first frame of the boot is built (SPEC.md §6.1), and a node in factory state runs no app: it
says HELLO as node 0 and waits to be provisioned (§6.6).
"""

import asyncio

from micropython import const

from . import config as config_file
from .hw import Board
from .link import SerialTransport
from .node import Node
from .spool import Spool
from .uplink_queue import UplinkQueue

WDT_TIMEOUT_MS = const(30000)
# The kind app of each node kind: module ssnode.<name> with a class App.
KIND_MODULES = {"air-quality": "aq_node", "traffic": "traffic_node"}


def load_app(node, board):
    """The kind app (`ssnode/aq_node.py`, `ssnode/traffic_node.py`, or `ssnode/<kind>_node.py`
    for another kind). A kind that cannot be loaded leaves the node running without an app,
    with the reason in its faults."""
    kind = node.config["kind"]
    name = KIND_MODULES.get(kind, kind.replace("-", "_") + "_node")
    try:
        module = __import__("ssnode." + name, None, None, ["App"])
        return module.App(node, board)
    except Exception as exc:  # a broken app must not take the link down with it
        node.faults["app"] = f"{name}: {exc!r}"
        return None


def make_transport(config, board):
    if config["link"] == "ble":
        from . import ble_link  # only nodes on BLE load the radio stack

        return ble_link.transport(board, config)
    return SerialTransport(board.link_uart())


async def run(config, board, boot, slot=None):
    queue = UplinkQueue(Spool(max_bytes=config["spool_max_kb"] * 1024))
    node = Node(config, board, boot, make_transport(config, board), queue)
    tasks = [("send", node.link.send_loop()), ("receive", node.link.receive_loop())]
    extra = []
    if node.provisioned:
        from .ota import Ota  # only a provisioned node takes updates

        node.ota = Ota(node, slot)
        extra = ["ota"] if slot is not None else []
        if slot is not None and slot.safe_mode:  # ssboot.py: too many failed boots in a row
            node.faults["app"] = f"safe mode: {slot.pointer['fails']} failed boots in a row"
            extra.append("safe_mode")
        else:
            node.app = load_app(node, board)
        tasks.append(("status", node.status_loop()))
        if node.app is not None:
            tasks.append(("app", node.app.run()))
    node.hello(node.app.sensors if node.app is not None else [], extra)
    if node.ota is not None:
        node.ota.after_boot()
    node.log(6, f"boot {boot} node {node.node_id} kind {config['kind']} "
                f"reset_cause {board.reset_cause()}")
    if "app" in node.faults:
        node.log(3, "no app: " + node.faults["app"])
    node.tasks = [asyncio.create_task(node.run_task(name, coro)) for name, coro in tasks]
    await node.supervise(WDT_TIMEOUT_MS)


def factory_reset_by_button(board):
    """BOOT held at power-up: forget id, key and queued frames (SPEC.md §6.6)."""
    config = config_file.load()
    config["node_id"] = 0
    config["key"] = ""
    config_file.save(config)
    Spool().clear()
    print("I factory reset (BOOT button)")


def main(slot=None):
    """Run the node; `slot` is ssboot.py's Slot (None: started without the boot selector)."""
    board = Board()
    if board.boot_button_held():
        factory_reset_by_button(board)
    config = config_file.load()
    boot = config_file.next_boot()
    asyncio.run(run(config, board, boot, slot))
