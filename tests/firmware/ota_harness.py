"""Test side of the firmware-update tests: bundles of a changed firmware, and a sender that
feeds one to a node through `MiniGateway` the way the gateway does (SPEC.md §5.13)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from streetsense.gateway.bundles import Bundle, parse_bundle
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.node_sources import firmware_dir
from streetsense.protocol import Frame
from streetsense.protocol import messages as m
from streetsense.tools.bundle import build_bundle
from tests.firmware.node_harness import TEST_KIND

RESENDS = 5
RESEND_AFTER_S = 3.0
BROKEN_APP = 'raise RuntimeError("this build crashes on boot")\n'


def firmware_copy(tmp_path: Path, version: str, *, crash: bool = False) -> Path:
    """The node firmware with FIRMWARE_VERSION = `version` and the test kind app; `crash`:
    an app.py that raises when imported (the build that never comes up)."""
    tree = tmp_path / f"firmware-{version}"
    shutil.copytree(firmware_dir(), tree, ignore=shutil.ignore_patterns("__pycache__"))
    node_py = tree / "ssnode" / "node.py"
    node_py.write_text(node_py.read_text().replace('FIRMWARE_VERSION = "0.1.0"',
                                                   f'FIRMWARE_VERSION = "{version}"'))
    shutil.copy(TEST_KIND, tree / "ssnode" / "test_node.py")
    if crash:
        (tree / "ssnode" / "app.py").write_text(BROKEN_APP)
    return tree


def make_bundle(tmp_path: Path, version: str, *, crash: bool = False) -> Bundle:
    return parse_bundle(build_bundle(firmware_copy(tmp_path, version, crash=crash)))


def begin_body(bundle: Bundle, request: int) -> dict[int, object]:
    return {1: request, 2: bundle.version, 3: len(bundle.image),
            4: hashlib.sha256(bundle.image).digest(), 5: bundle.manifest_size}


class Sender:
    """Sends a bundle chunk by chunk, each after the node's OTA_STATUS for the one before."""

    def __init__(self, gw: MiniGateway, bundle: Bundle, request: int, chunk: int = 448, *,
                 resend_after_s: float = RESEND_AFTER_S) -> None:
        self.gw, self.bundle, self.request, self.chunk = gw, bundle, request, chunk
        self.resend_after_s = resend_after_s
        self.resent = 0
        self._seen = 0  # accepted OTA_STATUS frames consumed

    def next_status(self, timeout: float = 15.0) -> Frame:
        """The next OTA_STATUS the node sent after the ones already consumed."""
        def unread(frame: Frame) -> bool:  # called by wait() with the harness's lock held
            statuses = [f for f in self.gw.accepted if f.type == m.OTA_STATUS]
            return any(f is frame for f in statuses[self._seen:])

        frame = self.gw.wait(unread, timeout)
        self._seen += 1
        return frame

    def _send_chunk(self, offset: int, data: bytes) -> Frame:
        """Send a chunk until the node answers: a frame lost on the link is sent again, as
        the gateway does (SPEC.md §5.13: the node answers any chunk with its offset)."""
        for _ in range(RESENDS):
            self.gw.send(m.OTA_CHUNK, {1: self.request, 2: offset, 3: data})
            try:
                return self.next_status(self.resend_after_s)
            except AssertionError:
                self.resent += 1
        raise AssertionError(f"no OTA_STATUS for the chunk at {offset} after {RESENDS} tries")

    def begin(self) -> Frame:
        """Send OTA_BEGIN; the node's answer (statuses of earlier transfers are skipped)."""
        for _ in range(RESENDS):
            self.gw.send(m.OTA_BEGIN, begin_body(self.bundle, self.request))
            try:
                while True:
                    status = self.next_status(self.resend_after_s)
                    if status.body[1] == self.request:
                        return status
            except AssertionError:
                self.resent += 1
        raise AssertionError(f"no OTA_STATUS for OTA_BEGIN after {RESENDS} tries")

    def send_from(self, offset: int, *, stop_at: int | None = None,
                  corrupt_at: int | None = None) -> Frame:
        """Chunks from `offset` until the node stops answering `receiving` or `stop_at`
        bytes are confirmed; `corrupt_at`: that byte of the image arrives with a bit flipped."""
        image = self.bundle.image
        while True:
            data = image[offset:offset + self.chunk]
            if corrupt_at is not None and offset <= corrupt_at < offset + len(data):
                at = corrupt_at - offset  # whichever chunk carries that byte
                data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
            status = self._send_chunk(offset, data)
            if status.body[2] == m.OTA_RECEIVING and status.body[3] == len(image):
                return self.next_status(30)  # after the verification: installed or failed
            if status.body[2] != m.OTA_RECEIVING:
                return status
            offset = status.body[3]
            if stop_at is not None and offset >= stop_at:
                return status
