"""Hardware-in-the-loop rig: emulated boards, sensor emulators and (to come) the pytest plugin."""
