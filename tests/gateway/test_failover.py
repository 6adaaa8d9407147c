"""Which broker next: a lost member's successor at once, backoff only after a whole round."""

import random

from streetsense.gateway.failover import Failover


def test_next_member_at_once_backoff_after_a_round() -> None:
    """After a loss the next member is tried without waiting; once all three have failed
    the pause is a jittered backoff that doubles per round, capped; a good connection
    starts over."""
    failover = Failover(["a", "b", "c"], rng=random.Random(1), min_s=1.0, max_s=3.0)
    assert failover.current == "a"
    assert [failover.failed(), failover.current, failover.failed(), failover.current] == [
        0.0, "b", 0.0, "c"]
    pauses = []
    for _ in range(4):
        pauses.append(failover.failed())  # c fails: the round is over
        assert failover.failed() == 0.0 and failover.failed() == 0.0
    assert 0.5 <= pauses[0] <= 1.5 and 1.0 <= pauses[1] <= 3.0
    assert all(pause <= 4.5 for pause in pauses)  # capped at max_s, jittered by ±50 %
    failover.connected()
    assert (failover.current, failover.failed(), failover.current) == ("c", 0.0, "a")


def test_one_broker_backs_off_on_every_failure() -> None:
    """With one broker every failure is a whole round: the plain reconnect backoff."""
    failover = Failover(["only"], rng=random.Random(2), min_s=0.5, max_s=30.0)
    assert all(failover.failed() > 0 for _ in range(3)) and failover.current == "only"
