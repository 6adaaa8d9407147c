"""Hardware-in-the-loop rig: the pytest plugin, emulated boards, sensor emulators, broker fixture."""
