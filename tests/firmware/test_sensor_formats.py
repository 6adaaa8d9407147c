"""Byte formats of the sensor emulators against the datasheet examples in REFERENCE.md."""

from __future__ import annotations

import errno

from streetsense.hil import micropython
from streetsense.hil.emulators import bme280, pms5003, scd4x, sds011
from streetsense.hil.emulators.base import ManualClock
from streetsense.hil.emulators.i2c_bus import I2CBus
from streetsense.hil.node import FIRMWARE

WARM_S = 3600.0  # the UART models start warm: an hour of uptime


def test_sds011_example_frame() -> None:
    """12.3 / 45.6 µg/m³ from id A1B2 is AA C0 7B 00 C8 01 B2 A1 97 AB (REFERENCE.md)."""
    assert sds011.data_frame(123, 456, 0xA1B2) == bytes.fromhex("AAC07B00C801B2A197AB")


def test_sds011_model_frame_rounds_to_tenths() -> None:
    """The SDS011 model reports its environment in 0.1 µg/m³ with its id."""
    model = sds011.Sds011(pm2_5=12.3, pm10=45.6, device_id=0xA1B2, uptime_s=WARM_S)
    assert model.tick() == bytes.fromhex("AAC07B00C801B2A197AB")


def test_sds011_query_mode_and_sleep() -> None:
    """Query mode stops the stream; a query answers; asleep it is silent until work."""
    model = sds011.Sds011(pm2_5=1.0, pm10=2.0, uptime_s=WARM_S)
    reply = model.feed(sds011.command(sds011.CMD_MODE, 1, 1))
    assert reply[:5] == bytes.fromhex("AAC5020101") and model.tick() == b""
    assert model.feed(sds011.command(sds011.CMD_QUERY))[:2] == b"\xaa\xc0"
    model.feed(sds011.command(sds011.CMD_SLEEP, 1, 0))
    assert model.feed(sds011.command(sds011.CMD_QUERY)) == b""
    assert model.feed(sds011.command(sds011.CMD_SLEEP, 1, 1))[2:4] == b"\x06\x01"
    assert model.feed(sds011.command(sds011.CMD_QUERY))[:2] == b"\xaa\xc0"


def test_sensirion_crc_check_value() -> None:
    """Sensirion CRC-8 (poly 0x31, init 0xFF) of BE EF is 0x92 in the emulator."""
    assert scd4x.crc8(b"\xbe\xef") == 0x92


def test_sensirion_crc_check_value_firmware() -> None:
    """The firmware's CRC-8 gives the same check value under MicroPython."""
    code = (
        f"import sys; sys.path[:] = [{str(FIRMWARE)!r}]\n"
        "from ssnode.drivers.sensirion import crc8\n"
        "print(hex(crc8(b'\\xbe\\xef')))"
    )
    out = micropython.run("-c", code, timeout=10)
    assert out.stdout.strip() == "0x92", out.stderr


def test_pms5003_wake_command() -> None:
    """PMS5003 wake is 42 4D E4 00 01 01 74; passive mode is 42 4D E1 00 00 01 70."""
    assert pms5003.command(pms5003.CMD_SLEEP, 1) == bytes.fromhex("424DE400010174")
    assert pms5003.command(pms5003.CMD_MODE, 0) == bytes.fromhex("424DE100000170")


def test_pms5003_frame_layout() -> None:
    """A data frame is 32 bytes, length 28, CF=1 PM at 4/6/8, atmospheric at 10/12/14, counts
    at 16..26, reserved 0 at 28, 16-bit sum at 30."""
    frame = pms5003.data_frame(pms5003.words_for(7, 12, 60))
    assert len(frame) == 32 and frame[:4] == bytes.fromhex("424D001C")
    assert (frame[4:6], frame[6:8], frame[8:10]) == (b"\x00\x07", b"\x00\x0c", b"\x00\x5a")
    assert (frame[10:12], frame[12:14], frame[14:16]) == (b"\x00\x07", b"\x00\x0c", b"\x00\x3c")
    assert int.from_bytes(frame[16:18], "big") == 12 * 60 + 60 * 10 and frame[28:30] == bytes(2)
    assert int.from_bytes(frame[30:], "big") == sum(frame[:30])


def test_pms5003_model_modes_and_faults() -> None:
    """Passive reads answer, sleep silences, corrupt_next breaks one checksum, stuck freezes."""
    model = pms5003.Pms5003(pm1_0=1, pm2_5=2, pm10=3, uptime_s=WARM_S)
    assert model.feed(pms5003.command(pms5003.CMD_MODE, 0)) == pms5003.reply(pms5003.CMD_MODE, 0)
    assert model.tick() == b""
    model.corrupt_next = 1
    bad = model.feed(pms5003.command(pms5003.CMD_READ, 0))
    assert int.from_bytes(bad[30:], "big") != sum(bad[:30])
    model.stuck = True
    model.pm2_5 = 99
    frozen = pms5003.data_frame(pms5003.words_for(1, 2, 3))
    assert model.feed(pms5003.command(pms5003.CMD_READ, 0)) == frozen
    model.feed(pms5003.command(pms5003.CMD_SLEEP, 0))
    assert model.feed(pms5003.command(pms5003.CMD_READ, 0)) == b""
    model.unplugged = True
    assert model.feed(pms5003.command(pms5003.CMD_SLEEP, 1)) == b"" and model.asleep


def test_scd4x_words_and_not_ready() -> None:
    """Replies carry a CRC per word; data ready is 0 in the low 11 bits before a measurement."""
    clock = ManualClock()
    model = scd4x.Scd4x(clock=clock)
    assert model.write(scd4x.DATA_READY.to_bytes(2, "big"))
    clock.advance(0.001)  # its execution time
    reply = model.read(3)
    assert reply == scd4x.words(0x8000) and reply[2] == scd4x.crc8(reply[:2])
    assert model.write(scd4x.START_PERIODIC.to_bytes(2, "big"))
    assert not model.write(scd4x.SERIAL.to_bytes(2, "big"))  # refused while measuring


def test_bme280_inverse_hits_the_environment() -> None:
    """Bisected raw values compensate to the set T/P/H within Bosch's output resolution."""
    model = bme280.Bme280(temperature_c=-5.37, pressure_pa=98765.0, humidity_pct=87.5)
    t, p, h = model.expected()
    assert abs(t - -537) <= 1 and abs(p - 98765) <= 1 and abs(h / 1024 - 87.5) < 0.02


def test_bme280_calibration_registers() -> None:
    """Trimming bytes pack H4/H5 as 12-bit values sharing register 0xE5."""
    tp, h = bme280.calibration_bytes(bme280.CALIBRATION)
    assert len(tp) == 26 and tp[:2] == (27504).to_bytes(2, "little") and tp[25] == 75
    h4 = (h[3] << 4) | (h[4] & 0x0F)
    h5 = (h[5] << 4) | (h[4] >> 4)
    assert (h4, h5) == (bme280.CALIBRATION["H4"], bme280.CALIBRATION["H5"])


def test_i2c_bus_nacks_absent_device() -> None:
    """An address without a device answers ENODEV; scan lists present devices."""
    bus = I2CBus({0x76: bme280.Bme280()})
    assert bus.transfer(b"W", 0x77, b"\xd0", 0) == (errno.ENODEV, b"")
    assert bus.transfer(b"W", 0x76, b"\xd0", 0) == (0, b"")
    assert bus.transfer(b"R", 0x76, b"", 1) == (0, b"\x60")
    assert bus.transfer(b"S", 0, b"", 0) == (0, b"\x76")
