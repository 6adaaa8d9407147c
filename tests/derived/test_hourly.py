"""Hourly means from interval statistics: coverage rule, straddling intervals, gaps, late data."""

from __future__ import annotations

import json

from streetsense.gateway.derived.hourly import HOUR_S, HourlyMeans

T0 = 1_796_342_400  # 2026-12-04T00:00:00Z, an hour boundary


def feed_minutes(means: HourlyMeans, start: int, minutes: int, value: float) -> list[int]:
    closed: list[int] = []
    for m in range(1, minutes + 1):
        closed += means.add(start + 60 * m, 60, {"pm2_5": value})
    return closed


def test_full_hour_mean_closes_when_next_hour_starts() -> None:
    """Sixty 1-minute readings make the hour; it closes with the first reading after it."""
    means = HourlyMeans(["pm2_5"])
    assert feed_minutes(means, T0, 60, 12.0) == []
    assert means.add(T0 + HOUR_S + 60, 60, {"pm2_5": 99.0}) == [T0]
    assert means.mean("pm2_5", T0) == 12.0
    assert means.coverage("pm2_5", T0) == 1.0


def test_coverage_below_75_percent_is_no_mean() -> None:
    """44 minutes (73 %) give no mean; 45 minutes (75 %) do."""
    short, enough = HourlyMeans(["pm2_5"]), HourlyMeans(["pm2_5"])
    feed_minutes(short, T0, 44, 10.0)
    feed_minutes(enough, T0, 45, 10.0)
    for means in (short, enough):
        means.add(T0 + HOUR_S + 60, 60, {"pm2_5": 1.0})
    assert short.mean("pm2_5", T0) is None
    assert enough.mean("pm2_5", T0) == 10.0


def test_interval_straddling_the_hour_is_split_by_overlap() -> None:
    """A 10-min reading over 00:55-01:05 puts 5 min in each hour, weighted by seconds."""
    means = HourlyMeans(["pm2_5"], min_coverage=0.0)
    means.add(T0 + 3300, 3300, {"pm2_5": 10.0})  # 00:00-00:55 at 10
    means.add(T0 + 3900, 600, {"pm2_5": 22.0})  # 00:55-01:05 at 22
    means.add(T0 + 2 * HOUR_S + 60, 60, {"pm2_5": 0.0})  # closes 00:00 and 01:00
    # hour 0: (10*3300 + 22*300) / 3600 = (33000 + 6600) / 3600 = 11.0
    assert means.mean("pm2_5", T0) == 11.0
    assert means.mean("pm2_5", T0 + HOUR_S) == 22.0
    assert means.coverage("pm2_5", T0 + HOUR_S) == 300 / 3600


def test_gap_closes_the_hours_between_as_missing() -> None:
    """Silence for 3 hours: the hours in between close with no mean."""
    means = HourlyMeans(["pm2_5"])
    feed_minutes(means, T0, 60, 5.0)
    closed = means.add(T0 + 4 * HOUR_S + 60, 60, {"pm2_5": 5.0})
    assert closed == [T0, T0 + HOUR_S, T0 + 2 * HOUR_S, T0 + 3 * HOUR_S]
    assert means.recent("pm2_5", T0 + 3 * HOUR_S, 4) == [None, None, None, 5.0]


def test_reading_in_a_closed_hour_is_late_and_dropped() -> None:
    """Data for an hour already published cannot change it: counted as late."""
    means = HourlyMeans(["pm2_5"])
    feed_minutes(means, T0, 60, 5.0)
    means.add(T0 + HOUR_S + 60, 60, {"pm2_5": 5.0})
    assert means.add(T0 + 600, 60, {"pm2_5": 500.0}) == []
    assert means.late == 1 and means.mean("pm2_5", T0) == 5.0


def test_state_round_trips_through_json() -> None:
    """The open hour and the closed window survive a JSON save and load."""
    means = HourlyMeans(["pm2_5", "pm10"])
    feed_minutes(means, T0, 60, 8.0)
    feed_minutes(means, T0 + HOUR_S, 30, 4.0)
    restored = HourlyMeans(["pm2_5", "pm10"], state=json.loads(json.dumps(means.state())))
    for m in (means, restored):
        feed_minutes(m, T0 + HOUR_S + 1800, 31, 6.0)
    assert restored.state() == means.state()
    # hour 1: 30 min at 4 and 30 min at 6 -> 5.0
    assert restored.recent("pm2_5", T0 + HOUR_S, 2) == [5.0, 8.0]


def test_window_keeps_only_the_last_day() -> None:
    """Closed hours older than keep_hours are forgotten (bounded state)."""
    means = HourlyMeans(["pm2_5"], keep_hours=3)
    for h in range(6):
        feed_minutes(means, T0 + h * HOUR_S, 60, float(h))
    assert sorted(int(k) for k in means.state()["closed"]["pm2_5"]) == [
        T0 + 2 * HOUR_S, T0 + 3 * HOUR_S, T0 + 4 * HOUR_S,
    ]
