"""The demo's live table: rows from the gateway's messages, VN_AQI hourly or indicative."""

from __future__ import annotations

from streetsense.tools.demo import decode_payload
from streetsense.tools.demo_table import LiveTable, legend

AIR = {"kind": "air-quality", "interval_s": 5, "readings": {
    "pm2_5": {"value": 31.2, "unit": "ug/m3"}, "pm10": {"value": 48.0, "unit": "ug/m3"},
    "co2": {"value": 415, "unit": "ppm"}, "temperature": {"value": 28.5, "unit": "degC"}}}
TRAFFIC = {"kind": "traffic", "interval_s": 60, "readings": {
    "motorbikes": {"value": 40, "unit": "vehicles"},
    "motorbikes_1": {"value": 2, "unit": "vehicles"},
    "cars": {"value": 5, "unit": "vehicles"}, "speed_mean": {"value": 28.5, "unit": "km/h"}}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _row(table: LiveTable, node: str) -> str:
    return next(line for line in table.render().splitlines() if line.startswith(node))


def test_air_quality_row_shows_readings_units_and_indicative_vn_aqi() -> None:
    """PM2.5 31.2 and PM10 48 read the VN_AQI tables: PM2.5 31.2 is in 25-50 (index 50-100)."""
    clock = Clock()
    table = LiveTable(clock=clock)
    assert table.update("streetsense/hanoi/HN-0001/data", AIR)
    clock.now += 3
    row = _row(table, "HN-0001")
    assert "PM2.5 31.2 µg/m³" in row and "CO2 415 ppm" in row and "28.5 °C" in row
    assert "3 s" in row
    # 50 + (100-50)/(50-25) * (31.2-25) = 62.4 -> 62, Moderate; PM10 48 is 48.
    assert row.endswith("~62 Moderate (now)")
    assert table.has_readings("air-quality") and not table.has_readings("traffic")


def test_indicative_vn_aqi_uses_the_corrected_pm2_5() -> None:
    """With the gateway's pm_correction in the data, the indicative index is of the corrected
    PM2.5 (22.0: 50/25 x 22 = 44), as the hourly one is; PM10 48 gives 48."""
    table = LiveTable()
    corrected = {**AIR, "pm_correction": {"method": "epa-2021",
                                          "pm2_5": {"value": 22.0, "unit": "ug/m3"}}}
    table.update("streetsense/hanoi/HN-0001/data", corrected)
    assert _row(table, "HN-0001").endswith("~48 Good (now)")


def test_hourly_aqi_replaces_the_indicative_one() -> None:
    table = LiveTable()
    table.update("streetsense/hanoi/HN-0001/data", AIR)
    table.update("streetsense/hanoi/HN-0001/aqi", {"vn_aqi": {"value": 111, "name_en": "Poor"}})
    assert _row(table, "HN-0001").endswith("111 Poor (hourly)")


def test_traffic_row_sums_lanes_and_shows_flow() -> None:
    table = LiveTable()
    table.update("streetsense/hanoi/HN-0003/data", TRAFFIC)
    table.update("streetsense/hanoi/HN-0003/traffic",
                 {"total": {"vehicles_per_hour": 2820, "pcu_per_hour": 1188.0}})
    row = _row(table, "HN-0003")
    assert "motorbikes 42, cars 5, heavy 0 in 60 s, 28.5 km/h = 2820 veh/h, 1188 PCU/h" in row


def test_link_quality_and_availability() -> None:
    table = LiveTable()
    table.update("streetsense/hanoi/HN-0001/state", {"state": "online", "kind": "air-quality",
                                                    "link": "serial-1"})
    assert "waiting for the first report" in _row(table, "HN-0001")
    table.update("streetsense/hanoi/HN-0001/status", {"link": {"tx": 9, "retries": 1}})
    assert "serial-1 10% retries" in _row(table, "HN-0001")
    table.update("streetsense/hanoi/HN-0001/state", {"state": "offline"})
    assert "offline" in _row(table, "HN-0001")


def test_gateway_topics_other_nodes_and_bad_shapes_are_counted_not_shown() -> None:
    """What the table cannot read (another publisher's payloads, another run's nodes) is
    skipped, never a crash."""
    table = LiveTable(["HN-0001"])
    assert not table.update("streetsense/hanoi/_gateway/gw/health", {"status": "ok"})
    assert not table.update("streetsense/hanoi/HN-0001/data", "not json")
    assert not table.update("streetsense/hanoi/HN-0001/data", {"readings": [1, 2]})
    assert not table.update("streetsense/hanoi/HN-0001/data", {"readings": {"pm2_5": 3}})
    assert not table.update("streetsense/hanoi/HN-0001/status", {"link": "serial"})
    assert not table.update("streetsense/hanoi/HN-0001/aqi", {"vn_aqi": {"value": "x"}})
    assert not table.update("streetsense/hanoi/HN-0001/traffic", {"total": None})
    assert not table.update("streetsense/hanoi/HN-0009/data", AIR)  # not one of ours
    assert table.messages == 8 and len(table.render().splitlines()) == 1


def test_non_json_payloads_reach_the_table_as_text() -> None:
    assert decode_payload(b"online") == "online" and decode_payload(b'{"a": 1}') == {"a": 1}
    assert decode_payload(b"\xff") == "\ufffd"


def test_legend_explains_the_columns_with_the_tables_in_use() -> None:
    """The legend names each column and spells out the VN_AQI bands and the PCU factors."""
    text = legend()
    assert "age:" in text and "link:" in text and "traffic:" in text
    assert "0-50 Good" in text and "301-500 Hazardous" in text and "(hourly)" in text
    assert "motorbikes 0.3" in text
