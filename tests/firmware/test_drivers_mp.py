"""The firmware drivers under MicroPython, against the CPython sensor emulators.

Each test starts an emulator (a PTY for UART sensors, the socket I2C bus for I2C ones), writes
the board file, and drives tests/firmware/mp_driver.py line by line: every wait is a reply
awaited with a timeout, or the driver's own bounded wait for a frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from streetsense.hil.emulators.base import SensorClock, UartSensorModel
from streetsense.hil.emulators.bme280 import Bme280
from streetsense.hil.emulators.i2c_bus import I2CBus
from streetsense.hil.emulators.optical_pm import OpticalPmModel
from streetsense.hil.emulators.pms5003 import CMD_MODE, Pms5003, command, words_for
from streetsense.hil.emulators.scd4x import Scd4x
from streetsense.hil.emulators.sds011 import Sds011
from streetsense.hil.emulators.uart_pty import UartPty
from tests.firmware.sensor_harness import DriverError, MpDriver, write_board

pytestmark = pytest.mark.micropython

# The sensors' slow processes (warm-up, the SCD4x's 3 minutes before a recalibration) run this
# much faster than real time; their protocol timings do not (the PMS5003 streams every 2.3 s
# when stable). The UART sensors start warm (an hour of uptime); the SCD4x measures every
# SCD_PERIOD_S here (5 s on the part: the driver's handling does not depend on it).
SPEEDUP = 40.0
WARM_S = 3600.0
SCD_PERIOD_S = 0.125
PMS_WORDS = list(words_for(4, 17, 33))  # CF=1 PM, atmospheric PM, particle counts


@pytest.fixture
async def pms(tmp_path: Path) -> AsyncIterator[tuple[Pms5003, UartPty, MpDriver]]:
    model = Pms5003(pm1_0=4, pm2_5=17, pm10=33, clock=SensorClock(SPEEDUP), uptime_s=WARM_S)
    async with UartPty(model) as pty, MpDriver(write_board(tmp_path, uart=pty.slave_path)) as mp:
        await mp.call("open pms5003")
        yield model, pty, mp


@pytest.fixture
async def sds(tmp_path: Path) -> AsyncIterator[tuple[Sds011, UartPty, MpDriver]]:
    model = Sds011(pm2_5=12.3, pm10=45.6, clock=SensorClock(SPEEDUP), uptime_s=WARM_S)
    async with UartPty(model) as pty, MpDriver(write_board(tmp_path, uart=pty.slave_path)) as mp:
        await mp.call("open sds011")
        yield model, pty, mp


@pytest.fixture
async def i2c(tmp_path: Path) -> AsyncIterator[tuple[I2CBus, MpDriver]]:
    bus = I2CBus()
    async with bus, MpDriver(write_board(tmp_path, i2c=bus.address)) as mp:
        yield bus, mp


async def test_pms5003_active_stream(pms: tuple[Pms5003, UartPty, MpDriver]) -> None:
    """Active mode: all 12 words come out (CF=1 and atmospheric PM1/2.5/10 as set, the particle
    counts), then new ones; above 30 µg/m³ the CF=1 words are the higher ones."""
    model, _, mp = pms
    words = await mp.call("read")
    assert words == PMS_WORDS and words[3:6] == [4, 17, 33]
    model.pm1_0, model.pm2_5, model.pm10 = 9, 55, 80
    await mp.call("flush")  # frames sent before the change are all on the wire by now
    words = await mp.call("read")
    assert words[3:6] == [9, 55, 80] and words[:3] == [9, 82, 120]


async def test_pms5003_passive_corrupt_then_good(pms: tuple[Pms5003, UartPty, MpDriver]) -> None:
    """Passive reads: a frame with a bad checksum raises ChecksumError, the next read is good."""
    model, _, mp = pms
    await _corrupt_then_good(model, mp, "set_passive", lambda: model.passive, PMS_WORDS)
    assert model.commands[-1] == bytes.fromhex("424DE200000171")


async def test_pms5003_mode_reply_is_recorded(pms: tuple[Pms5003, UartPty, MpDriver]) -> None:
    """The reply 42 4D 00 04 E1 00 .. to passive mode is checked and kept in `reply`, so the
    caller can tell that the command took; sleep is answered E4 00, wake not at all."""
    _, _, mp = pms
    await mp.call("set_passive")
    await _poll_until(mp, "reply", 0xE100)
    await mp.call("sleep")
    await _poll_until(mp, "reply", 0xE400)
    await mp.call("wake")
    assert await mp.call("passive") is False  # the sensor restarts in active mode


async def test_pms5003_restart_after_wake_loses_commands(
        pms: tuple[Pms5003, UartPty, MpDriver]) -> None:
    """Wake is a restart: a passive-mode command sent at once is lost and the sensor streams
    in active mode; sent again after the 3 s restart, the command takes."""
    model, _, mp = pms
    await mp.call("sleep")
    await _until(lambda: model.asleep)
    await mp.call("wake")
    await mp.call("set_passive")
    await _until(lambda: bool(model.dropped))
    assert model.dropped == [command(CMD_MODE, 0)] and not model.passive
    assert len(await mp.call("read 6000", timeout_s=8)) == 12  # its stream, once restarted
    await mp.call("set_passive")
    await _poll_until(mp, "reply", 0xE100)
    assert model.passive


async def test_pms5003_resync_after_garbage(pms: tuple[Pms5003, UartPty, MpDriver]) -> None:
    """Line noise (including a stray header) before a frame is skipped."""
    model, _, mp = pms
    await mp.call("set_passive")
    await _until(lambda: model.passive)
    model.noise_next = b"\x00\x42\x4d\xff\x13\x42\x42"
    assert await mp.call("read") == PMS_WORDS
    assert model.noise_next == b""


async def test_pms5003_sleep_unplugged(pms: tuple[Pms5003, UartPty, MpDriver]) -> None:
    """Asleep or unplugged, the sensor is silent and read raises SensorMissing; wake recovers."""
    model, _, mp = pms
    await _sleep_wake_unplug(model, mp, "set_passive", "wake", PMS_WORDS, "no data frame")


async def test_sds011_values_and_query_mode(sds: tuple[Sds011, UartPty, MpDriver]) -> None:
    """PM2.5/PM10 arrive in 0.1 µg/m³; in query mode each read queries one frame."""
    model, _, mp = sds
    assert await mp.call("read") == [123, 456]
    await mp.call("set_query_mode")
    await _until(lambda: model.query_mode)
    model.pm2_5, model.pm10 = 1.5, 999.9
    assert await mp.call("read") == [15, 9999]


async def test_sds011_corrupt_then_good(sds: tuple[Sds011, UartPty, MpDriver]) -> None:
    """A data frame with a bad checksum raises ChecksumError; the next one reads."""
    model, _, mp = sds
    await _corrupt_then_good(model, mp, "set_query_mode", lambda: model.query_mode, [123, 456])


async def test_sds011_sleep_and_unplugged(sds: tuple[Sds011, UartPty, MpDriver]) -> None:
    """A sleeping or unplugged SDS011 gives SensorMissing; work() brings it back."""
    model, _, mp = sds
    await _sleep_wake_unplug(model, mp, "set_query_mode", "work", [123, 456])


async def _corrupt_then_good(
    model: UartSensorModel[Any],
    mp: MpDriver,
    set_mode: str,
    in_mode: Callable[[], bool],
    good: list[int],
) -> None:
    """Into on-request mode; a frame with a bad checksum raises ChecksumError, the next reads."""
    await mp.call(set_mode)
    await _until(in_mode)
    model.corrupt_next = 1
    with pytest.raises(DriverError) as err:
        await mp.call("read")
    assert err.value.name == "ChecksumError"
    assert await mp.call("read") == good


async def _sleep_wake_unplug(
    model: OpticalPmModel[Any],
    mp: MpDriver,
    set_mode: str,
    wake: str,
    good: list[int],
    missing_msg: str | None = None,
) -> None:
    """Asleep, then unplugged, read raises SensorMissing (with missing_msg in its text, if
    given); the `wake` command brings the sensor back in between (good readings once it has
    warmed up)."""
    await mp.call(set_mode)
    await mp.call("sleep")
    await _until(lambda: model.asleep)
    with pytest.raises(DriverError) as err:
        await mp.call("read 300")
    assert err.value.name == "SensorMissing"
    if missing_msg is not None:
        assert missing_msg in err.value.msg
    await mp.call(wake)
    await _until(lambda: not model.asleep and model.warm and not model.restarting())
    await mp.call("flush")
    assert await mp.call("read") == good
    model.unplugged = True
    with pytest.raises(DriverError) as err:
        await mp.call("read 300")
    assert err.value.name == "SensorMissing"


async def _poll_until(mp: MpDriver, attribute: str, value: int, timeout_s: float = 5.0) -> None:
    """Let the driver poll until its `attribute` has `value`."""
    async with asyncio.timeout(timeout_s):
        while True:
            await mp.call("poll")
            if await mp.call(attribute) == value:
                return


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until the emulator's state satisfies condition (it changes in this event loop)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def _wait_ready(mp: MpDriver, timeout_s: float = 5.0) -> None:
    """Ask data_ready until a measurement is there."""
    async with asyncio.timeout(timeout_s):
        while not await mp.call("data_ready"):
            pass


async def test_scd4x_measurement(i2c: tuple[I2CBus, MpDriver]) -> None:
    """Serial, then periodic measurement: CO2 ppm, T and RH in 0.01 units as set; stop."""
    bus, mp = i2c
    model = Scd4x(co2_ppm=812, temperature_c=23.45, humidity_pct=41.7, interval_s=SCD_PERIOD_S)
    bus.devices[0x62] = model
    await mp.call("open scd4x")
    assert await mp.call("serial_number") == 0x1234_5678_9ABC
    assert await mp.call("variant") == 0x1408
    await mp.call("start_periodic")
    await _wait_ready(mp)
    co2, t, rh = await mp.call("read_measurement")
    # One word LSB is 175/65536 °C and 100/65536 %: within 0.01 after rounding.
    assert co2 == 812 and abs(t - 2345) <= 1 and abs(rh - 4170) <= 1
    await mp.call("stop_periodic")
    assert await mp.call("serial_number") == 0x1234_5678_9ABC  # waited the 500 ms itself


async def test_scd4x_crc_error_then_good(i2c: tuple[I2CBus, MpDriver]) -> None:
    """A reply word with a bad CRC raises ChecksumError; the next measurement reads."""
    bus, mp = i2c
    model = Scd4x(co2_ppm=1500, temperature_c=-10.0, humidity_pct=90.0,
                  interval_s=SCD_PERIOD_S)
    bus.devices[0x62] = model
    await mp.call("open scd4x")
    await mp.call("start_periodic")
    await _wait_ready(mp)
    model.corrupt_next = 1
    with pytest.raises(DriverError) as err:
        await mp.call("read_measurement")
    assert err.value.name == "ChecksumError"
    await _wait_ready(mp)
    co2, t, rh = await mp.call("read_measurement")
    assert co2 == 1500 and abs(t + 1000) <= 1 and abs(rh - 9000) <= 1


async def test_scd4x_second_read_in_a_period_is_nacked(i2c: tuple[I2CBus, MpDriver]) -> None:
    """Read-out empties the buffer: a second read_measurement before the next measurement is
    NACKed (SensorMissing), and data_ready says so beforehand."""
    bus, mp = i2c
    bus.devices[0x62] = Scd4x(co2_ppm=700, interval_s=0.5)  # no new one before the second read
    await mp.call("open scd4x")
    await mp.call("start_periodic")
    await _wait_ready(mp, timeout_s=10)
    assert (await mp.call("read_measurement"))[0] == 700
    assert await mp.call("data_ready") is False
    with pytest.raises(DriverError) as err:
        await mp.call("read_measurement")
    assert err.value.name == "SensorMissing" and "read failed" in err.value.msg


async def test_scd4x_forced_recalibration_and_asc(i2c: tuple[I2CBus, MpDriver]) -> None:
    """ASC is on at power-up and set off through the driver; a forced recalibration before
    3 minutes of measuring fails (None), after them it returns the correction and the sensor
    reads the reference."""
    bus, mp = i2c
    clock = SensorClock(400.0)  # 3 minutes in 0.45 s
    model = Scd4x(co2_ppm=500, clock=clock, interval_s=SCD_PERIOD_S)
    model.drift_ppm = 60
    bus.devices[0x62] = model
    await mp.call("open scd4x")
    assert await mp.call("asc_enabled") is True
    await mp.call("set_asc 0")
    assert await mp.call("asc_enabled") is False
    await mp.call("start_periodic")
    await mp.call("stop_periodic")
    await mp.call("start_forced_recalibration 500")
    assert await mp.call("forced_recalibration_result") is None  # it had not measured
    await mp.call("start_periodic")
    started = clock()
    await _until(lambda: clock() > started + 200)
    await mp.call("stop_periodic")
    await mp.call("start_forced_recalibration 500")
    assert await mp.call("forced_recalibration_result") == -60
    await mp.call("start_periodic")
    await _wait_ready(mp)
    assert (await mp.call("read_measurement"))[0] == 500


async def test_scd4x_missing(i2c: tuple[I2CBus, MpDriver]) -> None:
    """No device at 0x62: the bus NACK (OSError ENODEV) becomes SensorMissing."""
    _, mp = i2c
    await mp.call("open scd4x")
    with pytest.raises(DriverError) as err:
        await mp.call("serial_number")
    assert err.value.name == "SensorMissing" and "0x62" in err.value.msg


async def test_bme280_forced_reading(i2c: tuple[I2CBus, MpDriver]) -> None:
    """Forced mode: T (0.01 °C), P (Pa), H (1/1024 %RH) as set, bit-exact with Bosch's formulas."""
    bus, mp = i2c
    model = Bme280(temperature_c=31.07, pressure_pa=100456.0, humidity_pct=63.25)
    bus.devices[0x76] = model
    await mp.call("open bme280")
    t, p, h = await mp.call("read")
    assert [t, p, h] == list(model.expected())
    assert abs(t - 3107) <= 1 and abs(p - 100456) <= 1 and abs(h / 1024 - 63.25) < 0.02
    model.temperature_c, model.pressure_pa, model.humidity_pct = -12.5, 87000.0, 5.0
    t, p, h = await mp.call("read")
    assert abs(t + 1250) <= 1 and abs(p - 87000) <= 1 and abs(h / 1024 - 5.0) < 0.02
    assert model.measurements == 2


async def test_bme280_missing_and_unplugged(i2c: tuple[I2CBus, MpDriver]) -> None:
    """No BME280 at 0x76 fails the constructor with SensorMissing; so does a later unplug."""
    bus, mp = i2c
    with pytest.raises(DriverError) as err:
        await mp.call("open bme280")
    assert err.value.name == "SensorMissing" and "0x76" in err.value.msg
    model = Bme280()
    bus.devices[0x76] = model
    await mp.call("open bme280")
    model.unplugged = True
    with pytest.raises(DriverError) as err:
        await mp.call("read")
    assert err.value.name == "SensorMissing"
