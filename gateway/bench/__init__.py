"""The gateway's HIL bench: serving its boards to remote test sessions (``[hil] enabled``).

- ``server``: `HilServer` and the link taps and faults (`BenchLinks`) in the gateway's path.
- ``relays``: `BenchPower`, a board's power, reset and boot lines on GPIO relays.
- ``config``: the ``[hil]`` section (`HilSection`, `RelayLine`).
- ``wire``: the protocol's constants, shared with the client (``streetsense.hil.remote``).
"""
