"""What the two laser PM sensors share: a fan that has to spin up after power-up or wake, and
the faults of a fan and of an optical chamber.

Warm-up: Plantower's PMS5003 data manual (V2.5, Appendix II, note to the sleep command) says
stable data come at least 30 s after the sensor wakes, "because of the fan's performance";
Nova Fitness's Laser Dust Sensor Control Protocol V1.3 §5 (working period) runs the SDS011 for
30 s before each measurement. Until then the emulated readings scatter around the air's value,
by up to ±50 % times the share of the warm-up still to go, drawn per frame from a seeded
generator (neither document gives the size of the scatter: this emulator chooses one that
cannot be missed).

Fan stall (fault): no air is drawn through the chamber, the particles in it settle out, and the
readings decay towards zero with a 20 s time constant (emulator choice), then stay flat. The
Plantower manual (§"Working principle") and the SDS011 specification both describe the fan as
what brings the sample in; without it the laser sees the chamber, not the street.
Drift (fault): an ageing laser or a fouled optical chamber loses sensitivity; the readings lose
2 % of their value per emulated hour since the fault began (fault injection, far faster than a
real sensor ages, so a test sees it; collocation with a reference finds it in the field).
"""

from __future__ import annotations

import math
import random
from typing import Any

from .base import SensorClock, UartSensorModel, V

WARMUP_S = 30.0
WARMUP_SPREAD = 0.5
STALL_TAU_S = 20.0
DRIFT_PER_H = 0.02


class _FaultSince:
    """A fault switched on and off as a bool; the model keeps when (fast clock) it began, in
    the attribute `_<name>_since` (None while off)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._since = f"_{name}_since"

    def __get__(self, model: OpticalPmModel[Any], owner: type) -> bool:
        return getattr(model, self._since, None) is not None

    def __set__(self, model: OpticalPmModel[Any], value: bool) -> None:
        if value != self.__get__(model, type(model)):
            setattr(model, self._since, model.clock() if value else None)


class OpticalPmModel(UartSensorModel[V]):
    """Fan, warm-up and optical faults of a laser PM sensor; `uptime_s`: how long it has been
    running when the model starts (0: it was just powered up, so it warms up first)."""

    def __init__(self, *, interval_s: float, clock: SensorClock | None, uptime_s: float,
                 seed: int) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self._rng = random.Random(seed)
        self._fan_since = self.clock() - uptime_s * self.clock.speedup  # the fan's last start
        self._powered_since = self.clock.real() - uptime_s  # the same in real time
        self._fan_stalled_since: float | None = None
        self._drifting_since: float | None = None

    fan_stalled = _FaultSince()
    drifting = _FaultSince()

    # -- the fan -----------------------------------------------------------------------------
    def _fan_start(self) -> None:
        """Power-up or wake: the fan starts from rest and the warm-up begins again."""
        self._fan_since = self.clock()
        self._powered_since = self.clock.real()

    def restarting(self) -> bool:
        """Still booting after power-up or wake (a model that does so says when)."""
        return False

    @property
    def warm(self) -> bool:
        """The warm-up since the fan last started is over (a slow process: the fast scale)."""
        return self.clock() - self._fan_since >= WARMUP_S

    def _gain(self) -> float:
        """This frame's factor from the true air to what the sensor reports."""
        now = self.clock()
        gain = 1.0
        left = 1.0 - (now - self._fan_since) / WARMUP_S
        if left > 0:
            gain *= 1.0 + WARMUP_SPREAD * left * self._rng.uniform(-1.0, 1.0)
        if self._fan_stalled_since is not None:
            gain *= math.exp(-(now - self._fan_stalled_since) / STALL_TAU_S)
        if self._drifting_since is not None:
            gain *= max(0.0, 1.0 - DRIFT_PER_H * (now - self._drifting_since) / 3600.0)
        return gain
