"""The MQTT topic layout (gateway/topics.py): built and parsed in one place."""

from streetsense.gateway.topics import Topics


def test_topics_build_the_documented_layout() -> None:
    """Node, command, result and gateway topics are those of docs/mqtt.md."""
    topics = Topics("streetsense", "hanoi", "gw-01")
    assert topics.node("HN-0042", "data") == "streetsense/hanoi/HN-0042/data"
    assert topics.command("+", "+") == "streetsense/hanoi/+/cmd/+"
    assert topics.result("HN-0042", "config") == "streetsense/hanoi/HN-0042/cmd/config/result"
    assert topics.gateway("health") == "streetsense/hanoi/_gateway/gw-01/health"
    assert topics.gateway_base == "streetsense/hanoi/_gateway/gw-01"
    assert topics.any_gateway("state") == "streetsense/hanoi/_gateway/+/state"
    assert topics.everything == "streetsense/hanoi/#"


def test_topics_parse_their_own_topics_with_a_multi_level_prefix() -> None:
    """node_sub and gateway_sub undo node() and gateway(), also under a prefix of several
    levels; another site's topics, a gateway's and bare levels are not a node's."""
    topics = Topics("city/streetsense", "hanoi", "gw-01")
    assert topics.node_sub(topics.result("HN-1", "config")) == ("HN-1", "cmd/config/result")
    assert topics.gateway_sub(topics.gateway("state")) == ("gw-01", "state")
    assert topics.node_sub(topics.gateway("state")) is None
    assert topics.gateway_sub(topics.node("HN-1", "state")) is None
    assert topics.node_sub("city/streetsense/hue/HN-1/data") is None
    assert topics.node_sub("city/streetsense/hanoi/HN-1") is None
    assert topics.gateway_sub("city/streetsense/hanoi/_gateway/gw-01") is None
