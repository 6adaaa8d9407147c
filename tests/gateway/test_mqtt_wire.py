"""The gateway's MQTT codec against the standards' own examples and byte layouts (OASIS MQTT
5.0 and 3.1.1; section numbers in each test), split streams and malformed packets."""

from __future__ import annotations

import pytest

from streetsense.gateway import mqtt_wire as wire


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "00"), (127, "7f"), (128, "8001"), (16_383, "ff7f"), (16_384, "808001"),
    (2_097_151, "ffff7f"), (2_097_152, "80808001"), (268_435_455, "ffffff7f"),
])  # fmt: skip
def test_mqtt_wire_variable_byte_integer_is_the_table_of_the_standard(value: int,
                                                                       encoded: str) -> None:
    """5.0 §1.5.5 table 1-1 (3.1.1 §2.2.3 table 2.4): the boundaries of 1 to 4 bytes."""
    assert wire.varint(value).hex() == encoded
    packet = wire.Decoder(max_packet=1 << 28).feed(bytes((0xD0,)) + bytes.fromhex(encoded))
    assert packet == [] if value else packet == [wire.Packet(wire.PINGRESP, 0, b"")]


def test_mqtt_wire_variable_byte_integer_beyond_four_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        wire.varint(268_435_456)
    with pytest.raises(wire.MalformedPacket, match="longer than 4 bytes"):
        wire.Decoder().feed(b"\x30\xff\xff\xff\xff\x01")


def test_mqtt_wire_connect_311_with_will_and_credentials_byte_for_byte() -> None:
    """3.1.1 §3.1: protocol name, level 4, flags (user 0x80, password 0x40, Will retain
    0x20, Will QoS 1 0x08, Will 0x04, clean session 0x02), keep alive, then client id, Will
    topic, Will message, user name, password (§3.1.3), each length-prefixed."""
    packet = wire.encode_connect(wire.Connect(
        client_id="gw", v5=False, keepalive_s=30, username="u", password="p",
        will_topic="s/w", will_payload=b"off"))
    assert packet.hex() == (
        "101e" "00044d515454" "04" "ee" "001e"
        "00026777" "0003732f77" "00036f6666" "000175" "000170")


def test_mqtt_wire_connect_5_has_properties_and_will_properties() -> None:
    """5.0 §3.1.2.11: a property length after the keep alive (empty: Session Expiry 0, the
    session ends with the connection); §3.1.3.2: Will Properties before the Will topic."""
    packet = wire.encode_connect(wire.Connect(client_id="gw", keepalive_s=2,
                                              will_topic="s/w", will_payload=b"off"))
    assert packet.hex() == (
        "101a" "00044d515454" "05" "2e" "0002" "00"
        "00026777" "00" "0003732f77" "00036f6666")


def test_mqtt_wire_connect_never_sends_a_password_without_a_user_name() -> None:
    """3.1.1 §3.1.2.9: the password flag needs the user name flag."""
    packet = wire.encode_connect(wire.Connect(client_id="gw", v5=False, password="p"))
    assert packet[9] & 0xC0 == 0 and not packet.endswith(b"\x00\x01p")


def test_mqtt_wire_publish_qos1_311_and_5_with_correlation_data() -> None:
    """3.1.1 §3.3: flags DUP/QoS/RETAIN, topic, packet id, payload. 5.0 §3.3.2.3: the
    properties, here Correlation Data (0x09, binary data)."""
    assert wire.encode_publish("a/b", b"hi", packet_id=10, v5=False, retain=True).hex() == \
        "3309" "0003612f62" "000a" "6869"
    assert wire.encode_publish("a/b", b"hi", packet_id=10, v5=True,
                               correlation=b"c1").hex() == \
        "320f" "0003612f62" "000a" "050900026331" "6869"
    assert wire.encode_publish("a/b", b"", packet_id=1, v5=True, dup=True).hex() == \
        "3a08" "0003612f62" "0001" "00"


def test_mqtt_wire_publish_longer_than_127_bytes_has_a_two_byte_length() -> None:
    packet = wire.encode_publish("t", b"x" * 200, packet_id=1, v5=False)
    assert packet[:3] == bytes((0x32, 0xCD, 0x01))  # 205 = 0x4D + 1 * 128
    [decoded] = wire.Decoder().feed(packet)
    assert wire.parse_publish(decoded, v5=False) == ("t", b"x" * 200, 1, 1, False, {})


def test_mqtt_wire_subscribe_puback_disconnect_pingreq() -> None:
    """SUBSCRIBE's fixed-header flags are 0b0010 (5.0 §3.8.1, 3.1.1 §3.8.1); PUBACK success
    may leave out the reason code (5.0 §3.4.2.1); DISCONNECT normal (§3.14.2.1); PINGREQ."""
    assert wire.encode_subscribe(7, ["a/#", "b/+"], v5=False).hex() == \
        "820e" "0007" "0003612f2301" "0003622f2b01"
    assert wire.encode_subscribe(7, ["a/#"], v5=True).hex() == "8209" "0007" "00" "0003612f2301"
    assert wire.encode_puback(0x1234).hex() == "40021234"
    assert wire.encode_disconnect().hex() == "e000"
    assert wire.PINGREQ_BYTES.hex() == "c000"


def test_mqtt_wire_decoder_reassembles_packets_fed_byte_by_byte() -> None:
    stream = (bytes.fromhex("20020000")  # CONNACK 3.1.1 accepted
              + wire.encode_publish("cmd/x", b"{}" * 100, packet_id=3, v5=False)
              + bytes.fromhex("40020003d000"))  # PUBACK 3, PINGRESP
    decoder = wire.Decoder()
    packets = [p for byte in stream for p in decoder.feed(bytes((byte,)))]
    assert [p.type for p in packets] == [wire.CONNACK, wire.PUBLISH, wire.PUBACK,
                                         wire.PINGRESP]
    assert wire.Decoder().feed(stream) == packets


def test_mqtt_wire_decoder_keeps_only_the_head_of_a_packet_over_its_bound() -> None:
    """A PUBLISH longer than the bound is not held: its topic and packet id are kept, the
    rest skipped as it arrives, and the stream goes on with the next packet."""
    big = wire.encode_publish("cmd/x", b"y" * 300, packet_id=4, v5=False)
    decoder = wire.Decoder(max_packet=100)
    stream = big + bytes.fromhex("d000")
    packets = [p for i in range(0, len(stream), 7) for p in decoder.feed(stream[i:i + 7])]
    assert [p.type for p in packets] == [wire.PUBLISH, wire.PINGRESP]
    assert packets[0].dropped == len(big) - 3 - len(packets[0].body)
    assert wire.publish_head(packets[0]) == ("cmd/x", 1, 4)
    assert len(decoder._buffer) == 0


def test_mqtt_wire_connack_codes_and_properties() -> None:
    """3.1.1 §3.2.2.3 return codes; 5.0 §3.2.2.2 reason codes and §3.2.2.3 properties
    (Receive Maximum 0x21 and Server Keep Alive 0x13 change what the client does)."""
    assert wire.parse_connack(bytes.fromhex("0100"), v5=False) == (True, 0, {})
    assert wire.connack_reason(5, v5=False) == "return code 5 not authorized"
    assert wire.parse_connack(bytes.fromhex("0000" "06" "21000a" "13003c"), v5=True) == \
        (False, 0, {wire.RECEIVE_MAXIMUM: 10, wire.SERVER_KEEP_ALIVE: 60})
    assert wire.connack_reason(0x86, v5=True) == "0x86 bad user name or password"
    with pytest.raises(wire.MalformedPacket, match="reserved"):
        wire.parse_connack(bytes.fromhex("0200"), v5=False)


def test_mqtt_wire_puback_suback_disconnect_from_the_broker() -> None:
    """5.0 §3.4.2: PUBACK with a reason (0x10 no matching subscribers is a success, 0x87 a
    refusal) and properties; §3.9.3: SUBACK reason codes (0x80 failure in 3.1.1 §3.9.3);
    §3.14.2: a server's DISCONNECT with a reason string (0x1F)."""
    assert wire.parse_puback(bytes.fromhex("0005")) == (5, 0)
    assert wire.parse_puback(bytes.fromhex("000510")) == (5, 0x10)
    assert wire.parse_puback(bytes.fromhex("00058700")) == (5, 0x87)
    assert wire.parse_suback(bytes.fromhex("000101" "80"), v5=False) == (1, [1, 0x80])
    assert wire.parse_suback(bytes.fromhex("0001" "00" "0187"), v5=True) == (1, [1, 0x87])
    assert wire.parse_disconnect(bytes.fromhex("8e" "06" "1f000362796520")[:-1]) == \
        (0x8E, "bye")
    assert wire.reason_text(0x8E) == "0x8E session taken over"
    with pytest.raises(wire.MalformedPacket, match="PUBACK of 1 bytes"):
        wire.parse_puback(b"\x00")


def test_mqtt_wire_publish_in_with_properties_and_bad_ones() -> None:
    """5.0 §3.3: a received PUBLISH with Correlation Data and a User Property (a string pair,
    kept); an unknown property identifier, properties running past the packet, QoS 3
    (§3.3.1.2) and a wildcard in a topic name (§3.3.2.1) are malformed."""
    body = (bytes.fromhex("0005612f636d64" "0009")
            + bytes.fromhex("0c" "0900027131" "2600016b000176") + b"{}")
    topic, payload, qos, pid, retain, props = wire.parse_publish(
        wire.Packet(wire.PUBLISH, 0x03, body), v5=True)
    assert (topic, payload, qos, pid, retain) == ("a/cmd", b"{}", 1, 9, True)
    assert props == {wire.CORRELATION_DATA: b"q1", 0x26: [("k", "v")]}
    bad = {
        "unknown property 0x7F": bytes.fromhex("0001610001" "027f00"),
        "properties run past": bytes.fromhex("0001610001" "09"),
        "QoS 3": bytes.fromhex("0001610001" "00"),
        "wildcard": bytes.fromhex("0001230001" "00"),
    }
    for why, body in bad.items():
        flags = 0x06 if why == "QoS 3" else 0x02
        with pytest.raises(wire.MalformedPacket, match=why):
            wire.parse_publish(wire.Packet(wire.PUBLISH, flags, body), v5=True)
    with pytest.raises(wire.MalformedPacket, match="ends inside a field"):
        wire.parse_publish(wire.Packet(wire.PUBLISH, 0x02, bytes.fromhex("00056162")), v5=False)


@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    # 5.0 §4.7.1.2 (3.1.1 §4.7.1.2): the multi-level wildcard, also the parent level
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    # §4.7.1.3: the single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    # §4.7.2: topics starting with $ and wildcards
    ("#", "$SYS/broker/load", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/broker/load", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    # the gateway's own filters
    ("streetsense/hanoi/+/cmd/+", "streetsense/hanoi/HN-0001/cmd/reboot", True),
    ("streetsense/hanoi/+/cmd/+", "streetsense/hanoi/HN-0001/cmd/reboot/result", False),
])  # fmt: skip
def test_mqtt_wire_topic_matching_is_the_standards_examples(topic_filter: str, topic: str,
                                                            matches: bool) -> None:
    assert wire.topic_matches(topic_filter, topic) is matches
