"""A deliberately broken implementation, for the conformance runner's own tests.

The project's adapter (protocol/vectors/adapter.py) with the schema check switched off: a
decoder that trusts a body's shape, and an encoder that writes whatever it is given.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "protocol" / "vectors"))

import adapter

from streetsense.protocol import frame

frame.validate = lambda mtype, body, boot=None: None
adapter.main([sys.argv[0]])
