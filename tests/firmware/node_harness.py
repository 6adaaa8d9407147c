"""Test side of the node-core tests: a node of the test kind, and what to wait for.

The gateway they talk to is `streetsense.hil.mini_gateway.MiniGateway`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streetsense.hil.keys import NODE_ID
from streetsense.hil.node import EmulatedNode
from streetsense.protocol import Frame
from streetsense.protocol import messages as m

TEST_KIND = Path(__file__).with_name("mp_kind_test.py")


def make_node(tmp_path: Path, **kwargs: Any) -> EmulatedNode:
    """A node of the test kind (tests/firmware/mp_kind_test.py) on a fresh flash in tmp_path."""
    flash = tmp_path / "flash"
    (flash / "ssnode").mkdir(parents=True)
    shutil.copy(TEST_KIND, flash / "ssnode" / "test_node.py")
    kwargs.setdefault("extra_config", {})
    kwargs["extra_config"] = {"retry_max_s": 1, **kwargs["extra_config"]}
    return EmulatedNode("test", flash_dir=flash, **kwargs)


def hello(boot: int, node_id: int = NODE_ID) -> Callable[[Frame], bool]:
    return lambda f: f.type == m.HELLO and f.node_id == node_id and f.boot == boot


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition that has no event to wait on (files on the emulated flash)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)
