"""The node firmware as package data of ``streetsense.firmware`` (see streetsense/node_sources.py).

This file only makes the folder a package, so the firmware ships inside the wheel; it is not
deployed: a node gets boot.py, main.py and ssnode/.
"""
