# Runs first at every power-up (MicroPython convention); main.py starts the node.
import gc

gc.collect()
