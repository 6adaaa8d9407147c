"""A deliberately broken gateway for the HIL suite: it ACKs frames before committing them.

Run in place of ``streetsense gateway run`` (``gateway_process(command=...)`` marker). It is
the real gateway with one method patched in this process only: the session books a batch
as committed and acknowledges it at once, and commits it to the journal ``HOLD_S`` later.
A SIGKILL in that window loses frames the node has already forgotten, which the SIGKILL
scenario must catch.
"""

import asyncio
from typing import Any

from streetsense.gateway.session import Session
from streetsense.tools.gateway import gateway

HOLD_S = 1.5
_commit = Session._commit


async def _ack_then_commit(self: Session, arrivals: list[Any]) -> None:
    for arrival in arrivals:  # the bug: its bookkeeping takes them as committed...
        committed = arrival.node.committed
        committed[arrival.frame.boot] = max(committed.get(arrival.frame.boot, -1),
                                            arrival.frame.seq)
    await self._ack(arrivals)  # ...so the node may drop these frames now...
    await asyncio.sleep(HOLD_S)  # ...while the journal has not got them yet
    await _commit(self, arrivals)


Session._commit = _ack_then_commit  # type: ignore[method-assign]

if __name__ == "__main__":
    gateway()
