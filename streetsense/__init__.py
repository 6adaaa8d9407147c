"""StreetSense: edge stack for city street sensors.

The subpackages are mapped from the repository's top-level folders
(``streetsense.protocol`` from ``protocol/``, ``streetsense.tools`` from ``tools/``).
"""
