"""AqiDeriver: hourly ``aqi`` payloads from air-quality ``data`` messages, state kept in the
journal across restarts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streetsense.gateway.derived import AqiDeriver, PmCorrection
from tests.derived.derived_support import T0, MemoryStore, data_message

HOUR = 3600


def aq_messages(
    hours: int, pm25: float, pm10: float, *, start: int = T0
) -> Iterator[dict[str, Any]]:
    """Five-minute DATA messages (12 an hour) with steady PM; seq follows the clock."""
    for i in range(1, hours * 12 + 1):
        end = start + 300 * i
        seq = (end - T0) // 300 + 100_000
        yield data_message("air-quality", end, {"pm2_5": pm25, "pm10": pm10}, seq=seq)


def run(
    deriver: AqiDeriver, store: Any, messages: Iterator[dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        for subtopic, payload in deriver.on_data(object(), message, store):
            assert subtopic == "aqi"
            out.append(payload)
    return out


def test_steady_day_gives_hand_computed_indices(store: MemoryStore) -> None:
    """PM2.5 31.2 / PM10 60 for 13 h: VN_AQI 62 and EPA 92 from the second hour on."""
    published = run(AqiDeriver(), store, aq_messages(13, 31.2, 60.0))
    assert len(published) == 12  # the 13th hour is still open
    first, second = published[0], published[1]
    # Hour 1 alone: c2 and c3 missing, so 1 of 3 -> no NowCast by either method.
    assert first["vn_aqi"]["insufficient"] and first["epa_aqi"]["insufficient"]
    assert first["pollutants"]["pm2_5"] == {
        "hourly_mean": 31.2, "coverage": 1.0, "nowcast": None, "hours_used": 1,
        "corrected_share": 0.0, "rh_above_95_share": None,  # no pm_correction block: raw
    }
    assert first["basis"] == {"pm2_5": "raw", "pm10": "raw"} and first["indicative"] is True
    # VN: PM2.5 50/25 * (31.2 - 25) + 50 = 62.4 -> 62; PM10 50/100 * (60 - 50) + 50 = 55.
    assert second["vn_aqi"]["value"] == 62 and second["vn_aqi"]["dominant"] == "pm2_5"
    assert second["vn_aqi"]["sub_indices"] == {"pm2_5": 62, "pm10": 55}
    assert second["vn_aqi"]["name"] == "Trung bình" and second["vn_aqi"]["hours_used"] == 2
    # EPA: PM2.5 49/26.3 * (31.2 - 9.1) + 51 = 92.17 -> 92; PM10 49/99 * (60 - 55) + 51 = 53.5 -> 53
    assert second["epa_aqi"]["sub_indices"] == {"pm2_5": 92, "pm10": 53}
    assert second["epa_aqi"]["name"] == "Moderate"
    assert published[-1]["vn_aqi"]["hours_used"] == 12
    assert (published[1]["hour"], published[1]["hour_end"]) == (
        "2026-12-04T01:00:00Z", "2026-12-04T02:00:00Z",
    )
    assert published[1]["node"] == "HN-0042" and published[1]["daily"] is None


def test_rising_pm_uses_the_nowcast_weights() -> None:
    """Hours at 10, then 40: NowCast (40 + 0.5*10) / 1.5 = 30 -> VN 50/25*5+50 = 60."""
    store = MemoryStore()
    deriver = AqiDeriver()
    run(deriver, store, aq_messages(1, 10.0, 10.0))
    published = run(deriver, store, aq_messages(2, 40.0, 10.0, start=T0 + HOUR))
    # closes hour 0 (10, alone: no NowCast) then hour 1 (40): w* = 10/40 -> 0.5
    assert published[1]["pollutants"]["pm2_5"]["nowcast"] == 30.0
    assert published[1]["vn_aqi"]["sub_indices"]["pm2_5"] == 60


def test_missing_hour_and_insufficient_flag(store: MemoryStore) -> None:
    """A silent hour closes as a gap; after two silent hours the NowCast is insufficient."""
    deriver = AqiDeriver()
    run(deriver, store, aq_messages(3, 20.0, 20.0))
    later = run(deriver, store, aq_messages(1, 20.0, 20.0, start=T0 + 6 * HOUR))
    # closes hour 2 (data) then hours 3, 4, 5 (silent)
    assert [p["hour"][11:16] for p in later] == ["02:00", "03:00", "04:00", "05:00"]
    gap1, gap2 = later[1], later[2]
    assert gap1["pollutants"]["pm2_5"]["hourly_mean"] is None
    assert not gap1["vn_aqi"]["insufficient"]  # c2, c3 present
    assert gap2["vn_aqi"]["insufficient"] and gap2["epa_aqi"]["insufficient"]  # c1, c2 missing


def test_other_messages_are_ignored(store: MemoryStore) -> None:
    """Traffic nodes, uptime clocks and messages without interval or PM publish nothing."""
    deriver = AqiDeriver()
    ignored = [
        data_message("traffic", T0 + 300, {"motorbikes": 10}),
        data_message("air-quality", T0 + 300, {"pm2_5": 1.0}, clock="uptime"),
        data_message("air-quality", T0 + 300, {"pm2_5": 1.0}, interval_s=None),
        data_message("air-quality", T0 + 300, {"co2": 400.0}),
    ]
    assert all(deriver.on_data(object(), m, store) == [] for m in ignored)
    assert store.saved == {}


def test_replayed_message_is_not_counted_twice(store: MemoryStore) -> None:
    """A message that comes again (same ts: a replay after a restart) is skipped."""
    deriver = AqiDeriver()
    first = data_message("air-quality", T0 + 300, {"pm2_5": 10.0}, seq=5)
    deriver.on_data(object(), first, store)
    replay = dict(first, readings={"pm2_5": {"value": 500.0, "unit": "ug/m3"}})
    assert deriver.on_data(object(), replay, store) == []
    assert AqiDeriver().on_data(object(), replay, store) == []  # after a restart too
    state = store.load_state("aqi/42")
    assert state is not None
    assert state["hourly"]["open"][str(T0)]["pm2_5"] == [10.0 * 300, 300]


def test_daily_index_at_the_end_of_the_local_day(store: MemoryStore) -> None:
    """Vietnam's day (UTC+7) ends 17:00 UTC: that hour's payload carries the daily indices."""
    # 24 h from 2026-12-03T17:00Z: hours 0..23 local on 4 Dec; PM2.5 55.7 all day.
    start = T0 - 7 * HOUR
    published = run(AqiDeriver(), store, aq_messages(24, 55.7, 40.0, start=start))
    published += run(AqiDeriver(), store, aq_messages(1, 55.7, 40.0, start=start + 24 * HOUR))
    ends = [p for p in published if p["daily"] is not None]
    assert [p["hour_end"] for p in ends] == ["2026-12-04T17:00:00Z"]
    daily = ends[0]["daily"]
    assert daily["date"] == "2026-12-04"
    # VN: (150-100)/(80-50) * (55.7-50) + 100 = 109.5 -> 110 (the decision's example);
    # PM10 40 -> 40. EPA: 49/69.9 * (55.7 - 55.5) + 151 = 151.14 -> 151.
    assert daily["vn_aqi"]["value"] == 110 and daily["vn_aqi"]["name"] == "Kém"
    assert daily["epa_aqi"]["value"] == 151 and daily["epa_aqi"]["name"] == "Unhealthy"
    assert daily["vn_aqi"]["hours_used"] == 24


def test_daily_needs_18_hours(store: MemoryStore) -> None:
    """With 17 valid hours of the day the daily index is insufficient."""
    start = T0 - 7 * HOUR
    deriver = AqiDeriver()
    run(deriver, store, aq_messages(17, 30.0, 30.0, start=start))
    published = run(deriver, store, aq_messages(1, 30.0, 30.0, start=start + 24 * HOUR))
    daily = next(p["daily"] for p in published if p["daily"] is not None)
    assert daily["vn_aqi"]["insufficient"] and daily["vn_aqi"]["hours_used"] == 17
    assert daily["means"] == {"pm2_5": None, "pm10": None}


def check_restart_matches_uninterrupted(make_store: Any) -> None:
    messages = list(aq_messages(16, 0.0, 0.0))
    # A varying series so the NowCast depends on the whole window.
    for i, m in enumerate(messages):
        m["readings"]["pm2_5"]["value"] = 10.0 + (i * 7) % 23
        m["readings"]["pm10"]["value"] = 30.0 + (i * 11) % 41
    reference = run(AqiDeriver(), MemoryStore(), iter(messages))
    store = make_store()
    before = run(AqiDeriver(), store, iter(messages[:100]))  # mid-hour: an hour still open
    after = run(AqiDeriver(), make_store(), iter(messages[100:]))  # a new process
    assert before + after == reference
    assert after[-1]["vn_aqi"]["hours_used"] == 12


def test_state_survives_a_restart_in_memory() -> None:
    """A new deriver on the same store continues the 12-hour window exactly."""
    shared = MemoryStore()
    check_restart_matches_uninterrupted(lambda: shared)


class SqliteStore:
    """The journal's state table shape on a real SQLite file."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA synchronous = OFF")  # durability is the journal's test, not ours
        self.db.execute("CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT)")

    def load_state(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO state (name, value) VALUES (?, ?)",
                (name, json.dumps(state)),
            )


def test_state_survives_a_restart_in_sqlite(tmp_path: Path) -> None:
    """Same as above with the state in a SQLite file reopened by the 'restarted' process."""
    stores: list[SqliteStore] = []

    def reopen() -> SqliteStore:
        for s in stores:
            s.db.close()
        stores.append(SqliteStore(tmp_path / "journal.db"))
        return stores[-1]

    check_restart_matches_uninterrupted(reopen)
    stores[-1].db.close()


@pytest.mark.parametrize("coverage", [0.5, 0.75])
def test_hour_coverage_is_configurable(store: MemoryStore, coverage: float) -> None:
    """40 minutes of data is an hourly mean at 50 % but not at the default 75 %."""
    deriver = AqiDeriver(min_hour_coverage=coverage)
    msgs = list(aq_messages(1, 12.0, 12.0))[:8]  # 8 x 5 min
    run(deriver, store, iter(msgs))
    out = run(deriver, store, aq_messages(1, 12.0, 12.0, start=T0 + HOUR))
    assert out[0]["pollutants"]["pm2_5"]["hourly_mean"] == (12.0 if coverage == 0.5 else None)


def test_rolled_back_commit_then_retransmit_books_once(store: MemoryStore) -> None:
    """If the journal commit carrying a message's state fails, the node's retransmission is
    booked against the committed state: nothing lost, nothing twice."""
    messages = list(aq_messages(2, 15.0, 15.0))
    messages[-1]["readings"]["pm2_5"]["value"] = 27.0
    deriver = AqiDeriver()
    for m in messages[:-1]:
        deriver.on_data(object(), m, store)
    committed = dict(store.saved)
    deriver.on_data(object(), messages[-1], store)
    store.saved = committed  # the transaction rolled back
    deriver.on_data(object(), messages[-1], store)  # the node sends it again
    reference = MemoryStore()
    for m in messages:
        AqiDeriver().on_data(object(), m, reference)
    assert store.saved == reference.saved


def test_state_in_the_gateway_journal(tmp_path: Path) -> None:
    """Inside the real journal's commit the state joins the transaction and survives reopening;
    a failed commit leaves the state as it was."""
    journal_mod = pytest.importorskip("streetsense.gateway.journal", reason="gateway journal")
    messages = list(aq_messages(3, 20.0, 20.0))
    deriver = AqiDeriver()

    def commit(journal: Any, message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []

        def derive() -> list[Any]:
            out.extend(deriver.on_data(object(), message, journal))
            return []

        journal.commit(journal_mod.Batch(), derive=derive)
        return out

    journal = journal_mod.Journal(tmp_path / "journal.db")
    for m in messages[:20]:
        commit(journal, m)

    def failing() -> list[Any]:
        deriver.on_data(object(), messages[20], journal)
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        journal.commit(journal_mod.Batch(), derive=failing)
    journal.close()
    journal = journal_mod.Journal(tmp_path / "journal.db")  # the gateway restarts
    published = [p for m in messages[20:] for _, p in commit(journal, m)]
    journal.close()
    reference = run(AqiDeriver(), MemoryStore(), iter(messages))
    assert published == reference[1:]  # hour 0 was published before the restart


def pms_messages(hours: int, rh: float, *, start: int = T0,
                 method: str = "epa-2021") -> Iterator[dict[str, Any]]:
    """Five-minute DATA of a PMS5003 node (atmospheric PM2.5 70, CF=1 100, PM10 90) with the
    gateway's pm_correction block, as the session hands them to the deriver."""
    for i in range(1, hours * 12 + 1):
        end = start + 300 * i
        message = data_message("air-quality", end, {"pm2_5": 70.0, "pm2_5_cf1": 100.0,
                                                     "pm10": 90.0, "humidity": rh}, seq=i)
        PmCorrection(method).amend_data(message)
        yield message


def test_indices_come_from_the_corrected_pm2_5(store: MemoryStore) -> None:
    """CF=1 100 at RH 60 is corrected to 0.524 x 100 - 0.0862 x 60 + 5.75 = 52.98 -> 53.0:
    VN_AQI 50/30 x 3 + 100 = 105, EPA 49/19.9 x (53.0 - 35.5) + 101 = 144.1 -> 144, not the
    raw 70's 133 and 161. The payload names its basis and says it is indicative."""
    published = run(AqiDeriver(), store, pms_messages(3, 60.0))
    last = published[-1]
    assert last["pollutants"]["pm2_5"]["hourly_mean"] == 53.0
    assert last["vn_aqi"]["sub_indices"]["pm2_5"] == 105
    assert last["epa_aqi"]["sub_indices"]["pm2_5"] == 144
    assert last["basis"] == {"pm2_5": "epa-2021", "pm10": "raw"}
    assert last["pollutants"]["pm2_5"]["corrected_share"] == 1.0
    assert last["pollutants"]["pm2_5"]["rh_above_95_share"] == 0.0
    assert last["indicative"] is True and "1459" in last["note"] and "§2.1a" in last["note"]
    raw = run(AqiDeriver(pm_correction="none"), MemoryStore(), pms_messages(3, 60.0,
                                                                             method="none"))
    assert raw[-1]["vn_aqi"]["sub_indices"]["pm2_5"] == 133 and raw[-1]["basis"]["pm2_5"] == "raw"


def test_mixed_hours_and_humid_air_are_told(store: MemoryStore) -> None:
    """An hour half corrected (the RH reading lost for 30 minutes) is "mixed"; the share of
    the hour measured above 95 % RH is given."""
    messages = list(pms_messages(1, 97.0))
    for m in messages[6:]:
        m["readings"]["humidity"]["value"] = 80.0
    for m in messages[:6]:
        del m["readings"]["humidity"]
        PmCorrection().amend_data(m)
    published = run(AqiDeriver(), store, iter([*messages, *pms_messages(1, 80.0,
                                                                       start=T0 + HOUR)]))
    first = published[0]
    assert first["basis"]["pm2_5"] == "mixed"
    assert first["pollutants"]["pm2_5"]["corrected_share"] == 0.5
    assert first["pollutants"]["pm2_5"]["rh_above_95_share"] is None  # RH for half only
