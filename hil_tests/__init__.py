"""Hardware-in-the-loop rig: pytest plugin, emulated boards, sensor emulators, broker fixture."""
