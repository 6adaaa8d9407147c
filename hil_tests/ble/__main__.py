"""``python -m streetsense.hil.ble``: a virtual BLE radio for other processes.

Prints one JSON line, then serves until interrupted (SIGINT or SIGTERM)::

    {"board": "127.0.0.1:40125", "centrals": ["tcp-client:127.0.0.1:40127"]}

``board`` is the ``"ble"`` entry for emulated boards' board files (give each its own
``"unique_id"``); each of ``centrals`` is the ``[ble] backend_options.transport`` of one
gateway whose ``backend`` names the rig's provider (``bleak_backend.gateway_settings``).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from .rig import BleRig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streetsense.hil.ble",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--centrals", type=int, default=1, help="controllers for gateways")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with BleRig() as rig:
        centrals = [rig.central_transport() for _ in range(args.centrals)]
        print(json.dumps({"board": rig.board_endpoint(), "centrals": centrals}), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
