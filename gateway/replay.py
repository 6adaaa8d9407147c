"""The replay rule of SPEC §6.2: a frame is new, a duplicate (re-ACK it) or a replay (drop
it), judged by (boot, seq) against the highest seq seen per boot, 16 boots per node."""

from __future__ import annotations

__all__ = ["MAX_BOOTS", "advance", "replay_verdict"]

MAX_BOOTS = 16  # boots tracked per node (SPEC §6.2)


def replay_verdict(boots: dict[int, int], boot: int, seq: int) -> str:
    """``new``, ``duplicate`` or ``replay`` for (boot, seq) against a node's tracked boots."""
    highest = boots.get(boot)
    if highest is None:
        if len(boots) >= MAX_BOOTS and boot < min(boots):
            return "replay"
        return "new"
    if seq > highest:
        return "new"
    return "duplicate" if seq == highest else "replay"


def advance(boots: dict[int, int], boot: int, seq: int) -> None:
    """Record (boot, seq) as the highest of its boot; the oldest boots beyond MAX_BOOTS go."""
    boots[boot] = seq
    while len(boots) > MAX_BOOTS:
        del boots[min(boots)]
