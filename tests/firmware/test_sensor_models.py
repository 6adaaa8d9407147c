"""Behaviour of the sensor models over time, as the datasheets describe the parts (each
model's docstring cites its source): replies, restarts, warm-up, cadence, faults, buffers,
calibration. Time runs on a ManualClock, so hours pass at once."""

from __future__ import annotations

import itertools

import pytest

from streetsense.hil.emulators import pms5003, scd4x, sds011
from streetsense.hil.emulators.base import ManualClock
from streetsense.hil.emulators.pms5003 import CMD_MODE, CMD_READ, CMD_SLEEP, Pms5003
from streetsense.hil.emulators.scd4x import Scd4x
from streetsense.hil.environment import SCD41_DRIFT_PPM, Environment

AIR = {"pm1_0": 20, "pm2_5": 31, "pm10": 45}
WARM = pms5003.words_for(20, 31, 45)


def _pms(clock: ManualClock, uptime_s: float = 3600.0) -> Pms5003:
    return Pms5003(**AIR, clock=clock, uptime_s=uptime_s)


def _atm_pm2_5(frame: bytes) -> int:
    return int.from_bytes(frame[12:14], "big")


def test_pms5003_mode_and_sleep_commands_are_answered() -> None:
    """E1 00 is answered 42 4D 00 04 E1 00 01 74 (REFERENCE.md), E1 01 and E4 00 likewise;
    the read command in passive mode gets a data frame, wake no answer."""
    model = _pms(ManualClock())
    assert model.feed(pms5003.command(CMD_MODE, 0)) == bytes.fromhex("424D0004E1000174")
    assert model.feed(pms5003.command(CMD_READ, 0))[:4] == bytes.fromhex("424D001C")
    assert model.feed(pms5003.command(CMD_MODE, 1)) == bytes.fromhex("424D0004E1010175")
    assert model.feed(pms5003.command(CMD_SLEEP, 0)) == bytes.fromhex("424D0004E4000177")
    assert model.feed(pms5003.command(CMD_SLEEP, 1)) == b"\x00"  # a restart, not an answer


def test_pms5003_wake_is_a_restart_in_active_mode() -> None:
    """After wake the sensor is back in active mode, loses commands and sends nothing for
    3 s, then streams; a mode command then takes."""
    clock = ManualClock()
    model = _pms(clock)
    model.feed(pms5003.command(CMD_MODE, 0))
    model.feed(pms5003.command(CMD_SLEEP, 0))
    model.feed(pms5003.command(CMD_SLEEP, 1))
    assert not model.passive and model.restarting()
    clock.advance(2.9)
    assert model.feed(pms5003.command(CMD_MODE, 0)) == b"" and model.tick() == b""
    assert model.dropped == [pms5003.command(CMD_MODE, 0)] and not model.passive
    clock.advance(0.2)
    assert len(model.tick()) == 32  # streaming
    assert model.feed(pms5003.command(CMD_MODE, 0)) == pms5003.reply(CMD_MODE, 0)


def test_pms5003_readings_settle_30_s_after_wake() -> None:
    """Frames of the first 30 s after a wake scatter around the air; from then on they carry
    it exactly (CF=1, atmospheric and counts)."""
    clock = ManualClock()
    model = _pms(clock)
    model.feed(pms5003.command(CMD_SLEEP, 0))
    model.feed(pms5003.command(CMD_SLEEP, 1))
    early = []
    for _ in range(12):
        clock.advance(2.3)
        early.append(_atm_pm2_5(model.tick()))
    assert max(abs(v - 31) for v in early) >= 5  # far off while the fan spins up
    clock.advance(30.0)
    assert model.tick() == pms5003.data_frame(WARM)


def test_pms5003_active_cadence_follows_the_readings() -> None:
    """Stable readings go out every 2.3 s; after a change the next comes within 0.8 s."""
    model = _pms(ManualClock())
    model.tick()
    model.tick()
    assert model.cadence_s() == pms5003.STABLE_PERIOD_S
    model.pm2_5 = 80
    model.tick()
    assert model.cadence_s() == pms5003.FAST_PERIOD_S


def test_pms5003_cf1_and_counts_in_the_frame() -> None:
    """CF=1 words equal the atmospheric ones up to 30 µg/m³ and are 1.5 times them from 50 on;
    the six counts fall with particle size."""
    assert pms5003.words_for(20, 30, 45)[:6] == (20, 30, 62, 20, 30, 45)  # 45 x 1.375
    words = pms5003.words_for(60, 100, 150)
    assert words[:3] == (90, 150, 225) and words[3:6] == (60, 100, 150)
    counts = words[6:]
    assert all(a > b for a, b in itertools.pairwise(counts))


def test_pms5003_drops_the_first_command_after_wake_when_told() -> None:
    """Fault drop_after_wake: the first command after each wake is lost even after the
    restart; the next one takes."""
    clock = ManualClock()
    model = _pms(clock)
    model.drop_after_wake = True
    model.feed(pms5003.command(CMD_SLEEP, 0))
    model.feed(pms5003.command(CMD_SLEEP, 1))
    clock.advance(40.0)
    assert model.feed(pms5003.command(CMD_MODE, 0)) == b"" and not model.passive
    assert model.feed(pms5003.command(CMD_MODE, 0)) == pms5003.reply(CMD_MODE, 0)


def test_pms5003_fan_stall_decays_to_a_flat_zero() -> None:
    """A stalled fan: the readings decay as the chamber's particles settle, then stay 0."""
    clock = ManualClock()
    model = _pms(clock)
    model.fan_stalled = True
    clock.advance(20.0)
    assert 8 <= _atm_pm2_5(model.frame()) <= 14  # e^-1 of 31
    clock.advance(600.0)
    assert model.frame() == model.frame() == pms5003.data_frame(pms5003.words_for(0, 0, 0))


def test_pms5003_drift_loses_sensitivity_by_the_hour() -> None:
    """Drift: 2 % of the reading lost per hour since the fault began."""
    clock = ManualClock()
    model = _pms(clock)
    model.pm2_5 = 100
    model.drifting = True
    clock.advance(10 * 3600.0)
    assert _atm_pm2_5(model.frame()) == 80


def test_sds011_commands_05_07_08_are_answered() -> None:
    """Set device id (the sensor then answers to it only), firmware version, working period
    query and set: each answered AA C5 with the protocol's layout."""
    model = sds011.Sds011(device_id=0xA1B2, clock=ManualClock(), uptime_s=60)
    answer = model.feed(sds011.command(sds011.CMD_SET_ID, new_id=0x0102))
    assert answer == bytes.fromhex("AAC505000000020108AB") and model.device_id == 0x0102
    assert model.feed(sds011.command(sds011.CMD_QUERY, device_id=0xA1B2)) == b""
    version = model.feed(sds011.command(sds011.CMD_FIRMWARE))
    assert version[2:6] == bytes((sds011.CMD_FIRMWARE, *sds011.FIRMWARE))
    assert model.feed(sds011.command(sds011.CMD_PERIOD, 1, 5))[2:5] == b"\x08\x01\x05"
    assert model.feed(sds011.command(sds011.CMD_PERIOD, 0))[2:5] == b"\x08\x00\x05"


def test_sds011_working_period_reports_once_a_cycle() -> None:
    """Period 1 min: 30 s of work, then one frame, then silence to the minute; a query gets
    the latest measurement; period 0 measures every second again."""
    clock = ManualClock()
    model = sds011.Sds011(pm2_5=12.0, pm10=20.0, clock=clock, uptime_s=60)
    model.feed(sds011.command(sds011.CMD_PERIOD, 1, 1))
    sent = []
    for _ in range(120):
        clock.advance(1.0)
        if model.tick():
            sent.append(clock())
    assert sent == [30.0, 90.0]
    model.pm2_5 = 50.0
    assert model.feed(sds011.command(sds011.CMD_QUERY))[2:4] == (120).to_bytes(2, "little")
    model.feed(sds011.command(sds011.CMD_PERIOD, 1, 0))
    clock.advance(31.0)
    assert model.tick()[2:4] == (500).to_bytes(2, "little")


def test_sds011_sleeping_hears_only_work_and_warms_up_after() -> None:
    """Asleep it ignores a query; after work its readings scatter for 30 s, then settle."""
    clock = ManualClock()
    model = sds011.Sds011(pm2_5=40.0, pm10=60.0, clock=clock, uptime_s=60)
    model.feed(sds011.command(sds011.CMD_SLEEP, 1, 0))
    assert model.feed(sds011.command(sds011.CMD_QUERY)) == b""
    assert model.feed(sds011.command(sds011.CMD_SLEEP, 1, 1))[2:5] == b"\x06\x01\x01"
    early = set()
    for _ in range(10):
        clock.advance(1.0)
        early.add(model.tick()[2:4])
    assert len(early) > 5  # scattered
    clock.advance(30.0)
    assert model.tick()[2:4] == (400).to_bytes(2, "little")


def _write(model: Scd4x, cmd: int, arg: int | None = None) -> bool:
    data = cmd.to_bytes(2, "big")
    if arg is not None:
        data += scd4x.words(arg)
    return model.write(data)


def test_scd4x_read_out_empties_the_buffer() -> None:
    """A second read_measurement in the same 5 s period is NACKed; the next period reads."""
    clock = ManualClock()
    model = Scd4x(co2_ppm=650, clock=clock)
    _write(model, scd4x.START_PERIODIC)
    clock.advance(5.0)
    assert _write(model, scd4x.READ_MEASUREMENT)
    clock.advance(0.001)
    assert model.read(9) == scd4x.words(*model.raw_words())
    assert _write(model, scd4x.READ_MEASUREMENT)
    clock.advance(0.001)
    assert model.read(9) is None  # nothing new: NACK
    clock.advance(5.0)
    _write(model, scd4x.READ_MEASUREMENT)
    clock.advance(0.001)
    assert model.read(9) is not None


def test_scd4x_is_deaf_while_a_command_executes() -> None:
    """Reads and writes during a command's execution time are NACKed: 1 ms for data ready,
    500 ms after stop, 400 ms for a forced recalibration."""
    clock = ManualClock()
    model = Scd4x(clock=clock)
    assert _write(model, scd4x.DATA_READY)
    assert model.read(3) is None
    clock.advance(0.001)
    assert model.read(3) == scd4x.words(0x8000)
    _write(model, scd4x.START_PERIODIC)
    _write(model, scd4x.STOP_PERIODIC)
    clock.advance(0.499)
    assert not _write(model, scd4x.SERIAL)
    clock.advance(0.001)
    assert _write(model, scd4x.SERIAL)


def test_scd4x_forced_recalibration() -> None:
    """FRC: refused while measuring; 0xFFFF unless the sensor measured 3 min before the stop;
    then the datasheet example (reads 530, reference 480: answer 0x7FCE, -50 ppm), after which
    it reads the reference. A word with a bad CRC is not taken."""
    clock = ManualClock()
    model = Scd4x(co2_ppm=480, clock=clock)
    model.drift_ppm = 50
    _write(model, scd4x.START_PERIODIC)
    assert not _write(model, scd4x.FORCED_RECALIBRATION, 480)  # during measurement
    clock.advance(179.0)
    _write(model, scd4x.STOP_PERIODIC)
    clock.advance(0.5)
    assert _write(model, scd4x.FORCED_RECALIBRATION, 480)
    clock.advance(0.399)
    assert model.read(3) is None  # 400 ms to execute
    clock.advance(0.001)
    assert model.read(3) == scd4x.words(scd4x.FRC_FAILED)
    _write(model, scd4x.START_PERIODIC)
    clock.advance(181.0)
    _write(model, scd4x.STOP_PERIODIC)
    clock.advance(0.5)
    assert not model.write(b"\x36\x2f\x01\xe0\x00")  # bad CRC (0xb4 is right)
    assert model.write(b"\x36\x2f\x01\xe0\xb4")
    clock.advance(0.4)
    assert model.read(3) == bytes.fromhex("7fce7b")
    assert model.reading_ppm() == 480


@pytest.mark.parametrize("asc", [True, False])
def test_scd4x_asc_takes_the_lowest_reading_for_400_ppm(asc: bool) -> None:
    """ASC on (the default) at a kerbside whose air never drops below 480 ppm: after its 44 h
    initial period the sensor reads 80 ppm low. Set off (idle only), it keeps reading right."""
    clock = ManualClock()
    model = Scd4x(co2_ppm=480, clock=clock)
    assert model.asc_enabled
    _write(model, scd4x.START_PERIODIC)
    assert not _write(model, scd4x.SET_ASC, 0)  # not during measurement
    _write(model, scd4x.STOP_PERIODIC)
    clock.advance(0.5)
    assert _write(model, scd4x.SET_ASC, 1 if asc else 0)
    clock.advance(0.001)
    _write(model, scd4x.GET_ASC)
    clock.advance(0.001)
    assert model.read(3) == scd4x.words(1 if asc else 0)
    _write(model, scd4x.START_PERIODIC)
    for hour in range(45):
        model.co2_ppm = 480 + (hour % 24) * 20  # rush hours are higher still
        clock.advance(3600.0)
        _write(model, scd4x.DATA_READY)
        clock.advance(0.001)
        model.read(3)
    model.co2_ppm = 480
    assert model.reading_ppm() == (400 if asc else 480)


def test_environment_faults_reach_the_models() -> None:
    """Environment.fault sets the new faults on the right model, clears them with None, and
    refuses a fault a sensor cannot have."""
    with Environment() as env:
        env.fault("pm", "drop_after_wake")
        assert isinstance(env.pm, Pms5003) and env.pm.drop_after_wake
        env.fault("pm", "fan_stall")
        assert env.pm.fan_stalled and not env.pm.drop_after_wake  # one fault at a time
        env.fault("scd41", "drift")
        assert env.scd41.drift_ppm == SCD41_DRIFT_PPM
        env.fault("scd41", None)
        env.fault("pm", None)
        assert env.scd41.drift_ppm == 0 and not env.pm.fan_stalled
        for sensor, mode in (("scd41", "fan_stall"), ("bme280", "drift")):
            with pytest.raises(ValueError, match=f"no {mode} fault"):
                env.fault(sensor, mode)  # type: ignore[arg-type]
    with Environment(pm_sensor="sds011") as env, \
            pytest.raises(ValueError, match="no drop_after_wake fault"):
        env.fault("pm", "drop_after_wake")
