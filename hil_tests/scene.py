"""A plausible Hanoi street day, driving an `Environment` (hil_tests/environment.py).

Used by `streetsense emulate` and `make demo`, so emulated nodes report something that looks
like a street rather than constants. The shapes follow what Hanoi's roadside monitors show
(hourly PM2.5 with a morning rush peak around 7-8 h, a larger evening peak around 18-19 h
when the boundary layer sinks, high nights, a clean mid-afternoon; PM10/PM2.5 ~1.6 near
traffic), a warm humid climate (about 23-32 °C, humidity highest before dawn, a semidiurnal
pressure tide), and motorbike-dominated traffic (~80 % two-wheelers by day; trucks are
allowed in the inner city only at night, so the heavy share rises then). The numbers are
illustrative, not a dataset: seeded noise on smooth curves.

Each street has its own air. What a kerbside sensor breathes is the city's background (the
same on every street: night-time inversions, afternoon mixing, the whole city's rush hours)
plus the street's own traffic increment, scaled by its `traffic_exposure` (how busy the road
is and how little the air is diluted where the sensor hangs: a tree-lined boulevard ~0.5, an
arterial road with trucks ~1.6): the "Lenschow" split of urban PM into regional, urban and
kerbside increments (Lenschow et al., Atmos. Environ. 35 Suppl. 1, S23-S33, 2001). The
kerbside increment is coarser than the background (road dust resuspended by traffic: Amato
et al., Atmos. Chem. Phys. 11, 2917-2931, 2011), so PM10/PM2.5 rises with exposure; CO2
rises with traffic too. Busy streets thus differ most at rush hours and little at night.

Scene time can run faster than real time (`speedup`: scene seconds per real second), so a
day passes in minutes. Vehicles still cross the detectors in real time (the firmware measures
their speed): the flow is the scene hour's vehicles per hour, in real hours. They drive the
street model (hil_tests/street_scenarios.py) over the environment's detector layout, riders
anywhere across the lane; or, with `scenario`, a named scenario runs instead of the day's
traffic (the air still follows the day).
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass

from .environment import Environment
from .street_scenarios import SCENARIOS, Scenario, Street

_LEAD_S = 1.0  # the street is driven this far ahead of real time


@dataclass(frozen=True)
class Conditions:
    """The street at one scene hour."""

    hour: float
    pm1_0: float
    pm2_5: float
    pm10: float
    co2: float
    temperature: float
    humidity: float
    pressure: float
    vehicles_per_hour: float  # per lane
    mix: dict[str, float]


def _peak(hour: float, at: float, width_h: float) -> float:
    """A bump of height 1 at hour `at`, on the 24 h circle."""
    d = (hour - at + 12) % 24 - 12
    return math.exp(-0.5 * (d / width_h) ** 2)


def _daily(hour: float, peak_at: float) -> float:
    """A cosine of period 24 h with its maximum at `peak_at`."""
    return math.cos(2 * math.pi * (hour - peak_at) / 24)


class StreetScene:
    """Conditions for any hour (`conditions()`), and a thread that applies them (`start()`)."""

    def __init__(
        self, seed: int = 0, *, start_hour: float = 7.0, speedup: float = 60.0,
        step_s: float = 1.0, traffic_exposure: float | None = None,
        scenario: str | None = None,
    ) -> None:  # fmt: skip
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
        self.seed = seed
        self.scenario = scenario
        # The street's share of traffic in its air (see the module docstring); from the seed
        # unless given, so every seeded street has its own.
        self.traffic_exposure = (random.Random(f"{seed}:street").uniform(0.4, 1.7)
                                 if traffic_exposure is None else traffic_exposure)
        self.start_hour = start_hour
        self.speedup = speedup
        self.step_s = step_s
        self.steps = 0
        self._started_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._street: Street | None = None
        self._origin = 0.0  # monotonic time of street time 0

    def conditions(self, hour: float) -> Conditions:
        """The street at `hour` (0-24): smooth daily curves with seeded per-minute noise."""
        hour %= 24
        rng = random.Random(f"{self.seed}:{int(hour * 60)}")
        noise = 1 + rng.uniform(-0.08, 0.08)
        night = max(0.0, _daily(hour, 2.0))  # 0 by day, up to 1 around 2 h
        rush = _peak(hour, 7.5, 1.1) + 1.3 * _peak(hour, 18.5, 1.5)
        busy = 0.25 + 0.75 * _peak(hour, 13.0, 5.5) + rush  # the street's traffic, 0.25-2
        background = 24 + 10 * rush + 14 * night - 7 * _peak(hour, 14.5, 2.0)
        kerbside = 14 * self.traffic_exposure * busy  # µg/m³ of PM2.5 from this street
        pm2_5 = (background + kerbside) * noise
        day = 1.0 if 6.5 <= hour < 21.5 else 0.0
        flow = 120 + 1300 * day + 1100 * _peak(hour, 7.6, 1.0) + 1300 * _peak(hour, 17.8, 1.3)
        heavy = 0.08 if hour >= 22 or hour < 6 else 0.03  # inner-city truck ban by day
        cars = 0.17
        return Conditions(
            hour=hour,
            pm1_0=round((0.75 * background + 0.6 * kerbside) * noise, 1),
            pm2_5=round(pm2_5, 1),
            pm10=round((1.35 * background + 2.4 * kerbside) * noise, 1),  # road dust: coarse
            co2=round(425 + 25 * rush + 35 * night + 30 * self.traffic_exposure * busy
                      + rng.uniform(-4, 4)),
            temperature=round(27.5 + 4.5 * _daily(hour, 14.5) + rng.uniform(-0.2, 0.2), 2),
            humidity=round(min(98.0, 77 - 15 * _daily(hour, 14.5) + rng.uniform(-1, 1)), 1),
            pressure=round(1010 + 1.2 * math.cos(4 * math.pi * (hour - 10) / 24), 2),
            vehicles_per_hour=round(flow * (1 + rng.uniform(-0.1, 0.1))),
            mix={"motorbike": 1 - cars - heavy, "car": cars, "heavy": heavy},
        )

    @property
    def hour(self) -> float:
        """The scene hour now."""
        elapsed_h = (time.monotonic() - self._started_at) * self.speedup / 3600
        return (self.start_hour + elapsed_h) % 24

    def step(self, env: Environment) -> Conditions:
        """Apply the current hour: the air, and (traffic nodes) the next `step_s` of vehicles."""
        c = self.conditions(self.hour)
        env.set_air(
            pm1_0=c.pm1_0, pm2_5=c.pm2_5, pm10=c.pm10, co2=c.co2, temperature=c.temperature,
            humidity=c.humidity, pressure=c.pressure,
        )  # fmt: skip
        street = self._street
        if street is not None:
            if self.scenario is None:
                street.vehicles_per_hour, street.mix = c.vehicles_per_hour, c.mix
            until = time.monotonic() - self._origin + self.step_s + _LEAD_S
            street.arrive_until(until)
            env.present(street.advance(until), self._origin)
        self.steps += 1
        return c

    def start(self, env: Environment) -> StreetScene:
        """Apply the scene now, then every `step_s` in a thread until `stop()`."""
        if env.kind == "traffic":
            scenario = SCENARIOS[self.scenario] if self.scenario else Scenario("street_day", 0)
            self._street = Street(env.layout, scenario, self.seed)
            if self.scenario is None:
                c = self.conditions(self.start_hour)
                self._street.vehicles_per_hour, self._street.mix = c.vehicles_per_hour, c.mix
            if not scenario.scripted:
                self._street.start_clear()
            self._origin = time.monotonic() + _LEAD_S - self._street.t
        self._started_at = time.monotonic()
        self._stop.clear()
        self.step(env)
        self._thread = threading.Thread(target=self._run, args=(env,), name="scene", daemon=True)
        self._thread.start()
        return self

    def _run(self, env: Environment) -> None:
        while not self._stop.wait(self.step_s):
            self.step(env)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
