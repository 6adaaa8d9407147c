"""BLE without a radio: bumble virtual controllers, a bleak backend over them, and the
peripheral host behind the emulated board's ``bluetooth`` shim (see docs/ble.md).

- ``radio``: ``VirtualRadio`` (controllers on one link; in-process or HCI over TCP; range).
- ``peripheral``: a bumble peripheral driven like MicroPython's ``bluetooth.BLE``.
- ``peripheral_host``: the TCP server the emulated boards' ``bluetooth`` shim talks to.
- ``bleak_backend``: ``BumbleAdapter`` and ``bumble_backends`` for bleak's ``backend=``;
  ``BumbleBackends``, the provider a gateway's ``[ble] backend`` names.
- ``rig``: ``BleRig``, all of it on a thread for synchronous callers.
- ``nus``: the NUS service definition and a node's advertisement, for CPython peripherals.
"""
