"""Firmware updates through the gateway (issue 22): bundles in, chunks down, progress out.

A bundle (``streetsense bundle``) reaches the gateway as a retained MQTT message on
``<prefix>/<site>/_bundles/<sha256>``; the gateway keeps it, under that name, beside its
journal once the bytes hash to the name and parse as a bundle. ``cmd/ota`` for a node,
signed with the operator key like every command (``command_auth``), names the bundle by its
SHA-256: so the operator's signature covers the image, and the gateway's OTA_BEGIN, signed
with the node's key, carries its SHA-256 to the node (SPEC.md §5.13).

The transfer is driven by the node's OTA_STATUS: each answer says how many bytes it holds,
and the gateway sends the chunk from there; without an answer within ``resend_after_s`` it
sends again (an OTA_BEGIN, which the node answers with its offset). Transfers are saved in
the journal's state, so a gateway restarted (even SIGKILLed) resumes them from the node's
offset. Progress is published on ``<prefix>/<site>/<node>/ota`` (through the journal, as
every message from a node): ``{"state", "bytes", "total", "version", ...}``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from streetsense.protocol.messages import OTA_BEGIN, OTA_CHUNK, OTA_CHUNK_MAX
from streetsense.protocol.names import OTA_STATE_NAMES

from . import payloads
from .bundles import BundleStore
from .journal import Journal, Message
from .node_state import NodeState
from .publisher import Publisher
from .session import Session
from .topics import Topics

__all__ = ["Ota", "Transfer"]

log = logging.getLogger("streetsense.gateway.ota")

STATE_NAME = "ota.transfers"
DONE = ("confirmed", "failed", "rolled_back")
Refusal = tuple[str, str]


@dataclass
class Transfer:
    """One node's update, as saved in the journal."""

    node_id: int
    sha256: str
    version: str
    request: int
    total: int
    offset: int = 0
    state: str = "starting"
    message: str = ""


class Ota:
    """Transfers per node: started by ``start``, moved on by the node's OTA_STATUS
    (``on_status``, from the session) and by ``run`` (resends, resumes)."""

    def __init__(self, session: Session, publisher: Publisher, topics: Topics,
                 journal: Journal, store: BundleStore, *, resend_after_s: float = 3.0,
                 chunk: int = OTA_CHUNK_MAX, clock: Any = time.time) -> None:
        self._session = session
        self._publisher = publisher
        self._topics = topics
        self._journal = journal
        self.store = store
        self.resend_after_s = resend_after_s
        self.chunk = chunk
        self._clock = clock
        self.transfers: dict[int, Transfer] = {}
        self._sent_at: dict[int, float] = {}  # node -> monotonic time of the last downlink
        self._requests = itertools.count(int(clock()) & 0xFFFFFF)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.chunks_sent = 0

    @property
    def subscription(self) -> str:
        return self._topics.node("_bundles", "+")

    def handles(self, topic: str) -> bool:
        return topic.startswith(self._topics.node("_bundles", ""))

    def restore(self) -> None:
        """The transfers saved before a restart: each resumes from the node's offset."""
        saved = self._journal.load_state(STATE_NAME) or {}
        for key, fields in saved.items():
            transfer = self.transfers[int(key)] = Transfer(**fields)
            if transfer.state != "installed":
                transfer.state = "starting"  # the node's answer to OTA_BEGIN says where
        if self.transfers:
            log.info("resuming %d firmware transfers", len(self.transfers))

    def on_bundle(self, topic: str, payload: bytes) -> None:
        sha_hex = topic.rsplit("/", 1)[-1]
        if not payload:
            return
        why = self.store.put(sha_hex, payload)
        if why is None:
            log.info("bundle %s kept (%d bytes)", sha_hex[:12], len(payload))
        else:
            log.warning("bundle on %s refused: %s", topic, why)

    # ---- start ----------------------------------------------------------------------------

    async def start(self, node: NodeState, request: dict[str, Any]) -> Refusal:
        """Start (or restart) the transfer ``cmd/ota`` asks for: (code, message)."""
        sha_hex = request.get("sha256")
        if not isinstance(sha_hex, str) or len(sha_hex) != 64:
            return "BAD_ARGS", 'give "sha256": the bundle\'s SHA-256 (64 hex digits)'
        bundle = self.store.get(sha_hex)
        if bundle is None:
            return "NO_BUNDLE", (f"the gateway has no bundle {sha_hex[:12]}: publish it "
                                 f"(retained) on {self._topics.node('_bundles', sha_hex)} "
                                 f"first (streetsense ota does)")
        capabilities = (node.birth or {}).get("capabilities", [])
        if "ota" not in capabilities:
            return "NOT_SUPPORTED", (f"node {node.info.name} does not take updates over the "
                                     f"air (no \"ota\" in its HELLO): flash it")
        transfer = Transfer(node.node_id, sha_hex.lower(), bundle.version,
                            next(self._requests) & 0xFFFFFFFF, len(bundle.image))
        self.transfers[node.node_id] = transfer
        await self._save()
        await self._begin(node, transfer)
        self._publish_now(node, transfer)
        return "OK", f"transfer of {bundle.version} ({transfer.total} bytes) started"

    # ---- the node's answers ---------------------------------------------------------------

    def on_status(self, node: NodeState, body: dict[int, Any], now: float) -> list[Message]:
        """An OTA_STATUS from ``node``: the progress message; the next chunk is sent."""
        transfer = self.transfers.get(node.node_id)
        state = OTA_STATE_NAMES.get(body[2], str(body[2]))
        if transfer is None or (body[1] != transfer.request and state not in DONE):
            # no transfer of ours (a rollback report after the gateway forgot it): publish
            return [self._message(node, state, body[3], 0, body[4], body.get(5, ""), now)]
        transfer.offset, transfer.state = body[3], state
        transfer.message = body.get(5, "")
        self._sent_at.pop(node.node_id, None)
        if state == "receiving" and transfer.offset < transfer.total:
            self._spawn(self._send_chunk(node, transfer))
        elif state in DONE or state == "idle":
            if state == "idle":  # the node forgot it (a factory reset): start again
                transfer.state = "starting"
            else:
                del self.transfers[node.node_id]
        self._wake.set()
        self._spawn(self._save())
        return [self._message(node, state, transfer.offset, transfer.total, transfer.version,
                              transfer.message, now)]

    def _message(self, node: NodeState, state: str, done: int, total: int, version: str,
                 why: str, now: float) -> Message:
        payload: dict[str, Any] = {"node": node.info.name, "state": state, "bytes": done,
                                   "total": total, "version": version,
                                   "at": payloads.iso_utc(now, ms=True)}
        if why:
            payload["message"] = why
        return Message(self._topics.node(node.info.name, "ota"), payloads.encode(payload))

    def _publish_now(self, node: NodeState, transfer: Transfer) -> None:
        message = self._message(node, transfer.state, transfer.offset, transfer.total,
                                transfer.version, transfer.message, self._clock())
        self._spawn(self._publisher.publish_now(message.topic, message.payload))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- downlinks ------------------------------------------------------------------------

    async def _begin(self, node: NodeState, transfer: Transfer) -> None:
        bundle = self.store.get(transfer.sha256)
        if bundle is None:
            transfer.state, transfer.message = "failed", "the bundle is gone from the gateway"
            del self.transfers[node.node_id]
            self._publish_now(node, transfer)
            return
        body = {1: transfer.request, 2: bundle.version, 3: len(bundle.image),
                4: bundle.sha256, 5: bundle.manifest_size}
        await self._downlink(node, OTA_BEGIN, body)

    async def _send_chunk(self, node: NodeState, transfer: Transfer) -> None:
        bundle = self.store.get(transfer.sha256)
        if bundle is None:
            return
        offset = transfer.offset
        data = bundle.image[offset:offset + self.chunk]
        await self._downlink(node, OTA_CHUNK, {1: transfer.request, 2: offset, 3: data})
        self.chunks_sent += 1

    async def _downlink(self, node: NodeState, mtype: int, body: dict[int, Any]) -> None:
        self._sent_at[node.node_id] = time.monotonic()
        try:
            await self._session.send_downlink(node, mtype, body)
        except ConnectionError as exc:
            log.info("update of %s waits: %s", node.info.name, exc)

    async def _save(self) -> None:
        saved = {str(k): asdict(t) for k, t in self.transfers.items()}
        await self._journal.call(self._journal.save_state, STATE_NAME, saved)

    async def run(self) -> None:
        """Resend what was not answered; resume what a restart interrupted."""
        while True:
            now = time.monotonic()
            for node_id, transfer in list(self.transfers.items()):
                node = self._session.nodes.get(node_id)
                if node is None or node.link is None or node.current_boot is None:
                    continue
                sent = self._sent_at.get(node_id)
                if sent is None and transfer.state not in ("starting", "installed"):
                    continue  # a chunk is on its way (sent from on_status)
                if sent is None or now - sent >= self.resend_after_s:
                    if transfer.state != "installed":  # installed: it is resetting
                        await self._begin(node, transfer)
                    else:
                        self._sent_at[node_id] = now
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.resend_after_s / 3)
            except TimeoutError:
                pass
